from django.contrib import admin

from .models import Lease


@admin.register(Lease)
class LeaseAdmin(admin.ModelAdmin):
    list_display = ["guest", "expires_at", "warned_at", "stopped_at", "extensions"]
    raw_id_fields = ["guest"]
