from django.contrib import admin

from .models import Storage, StorageContent


@admin.register(Storage)
class StorageAdmin(admin.ModelAdmin):
    list_display = ["storage", "cluster", "node", "type", "shared", "status", "content_synced_at"]
    list_filter = ["cluster", "type", "shared", "status"]
    search_fields = ["storage"]
    readonly_fields = [f.name for f in Storage._meta.fields]


@admin.register(StorageContent)
class StorageContentAdmin(admin.ModelAdmin):
    list_display = ["volid", "storage", "content", "size", "vmid", "ctime"]
    list_filter = ["content"]
    search_fields = ["volid"]
    readonly_fields = [f.name for f in StorageContent._meta.fields]
