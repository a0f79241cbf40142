from django.contrib import admin

from .models import AuditEntry


@admin.register(AuditEntry)
class AuditEntryAdmin(admin.ModelAdmin):
    """Read-only: the audit log is append-only, written by services."""

    list_display = ["created", "username", "action", "target_repr", "result", "remote_addr"]
    list_filter = ["result", "action"]
    search_fields = ["username", "action", "target_repr"]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False
