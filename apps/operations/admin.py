from django.contrib import admin

from .models import Operation, OperationEvent


class OperationEventInline(admin.TabularInline):
    model = OperationEvent
    extra = 0
    can_delete = False
    readonly_fields = ["seq", "level", "message", "progress", "created"]


@admin.register(Operation)
class OperationAdmin(admin.ModelAdmin):
    list_display = ["id", "kind", "title", "status", "progress", "created_by", "created", "finished"]
    list_filter = ["status", "kind"]
    search_fields = ["id", "title", "target_repr", "error"]
    list_select_related = ["created_by"]
    exclude = ["secret"]  # a task's secret never shows, not even to admins
    readonly_fields = [f.name for f in Operation._meta.fields if f.name != "secret"]
    inlines = [OperationEventInline]
