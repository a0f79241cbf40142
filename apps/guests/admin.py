from django.contrib import admin

from .models import Guest, Snapshot


@admin.register(Guest)
class GuestAdmin(admin.ModelAdmin):
    list_display = ["vmid", "name", "type", "cluster", "node", "status", "lock", "pool"]
    list_filter = ["cluster", "type", "status"]
    search_fields = ["name", "vmid"]
    readonly_fields = [f.name for f in Guest._meta.fields]


@admin.register(Snapshot)
class SnapshotAdmin(admin.ModelAdmin):
    list_display = ["name", "guest", "snaptime", "vmstate"]
    search_fields = ["name"]
    readonly_fields = [f.name for f in Snapshot._meta.fields]
