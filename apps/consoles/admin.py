from django.contrib import admin

from .models import ConsoleSession, TenantConsoleSetting


@admin.register(ConsoleSession)
class ConsoleSessionAdmin(admin.ModelAdmin):
    list_display = ["started_at", "username", "target", "kind", "remote_addr", "ended_at", "bytes_in", "bytes_out"]
    list_filter = ["kind"]
    readonly_fields = [f.name for f in ConsoleSession._meta.fields]


@admin.register(TenantConsoleSetting)
class TenantConsoleSettingAdmin(admin.ModelAdmin):
    list_display = ["tenant", "enabled"]
