from django.contrib import admin

from .models import ApprovalRequest


@admin.register(ApprovalRequest)
class ApprovalRequestAdmin(admin.ModelAdmin):
    list_display = ["title", "tenant", "status", "created_by", "created", "decided_by"]
    list_filter = ["status", "tenant"]
    readonly_fields = [f.name for f in ApprovalRequest._meta.fields if f.name != "secret"]
    exclude = ["secret"]
