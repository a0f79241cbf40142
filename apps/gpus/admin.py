from django.contrib import admin

from .models import GpuDevice, GpuInventory, MdevType, PciMapping


@admin.register(GpuDevice)
class GpuDeviceAdmin(admin.ModelAdmin):
    list_display = ["pci_id", "device_name", "node", "cluster", "iommugroup", "mdev_capable", "stale", "last_seen"]
    list_filter = ["cluster", "mdev_capable", "stale"]
    search_fields = ["pci_id", "device_name", "subsystem_device_name"]
    readonly_fields = [f.name for f in GpuDevice._meta.fields]


@admin.register(MdevType)
class MdevTypeAdmin(admin.ModelAdmin):
    list_display = ["type", "name", "device", "available", "max_instances"]
    readonly_fields = [f.name for f in MdevType._meta.fields]


@admin.register(PciMapping)
class PciMappingAdmin(admin.ModelAdmin):
    list_display = ["mapping_id", "cluster", "mdev", "description"]
    readonly_fields = [f.name for f in PciMapping._meta.fields]


@admin.register(GpuInventory)
class GpuInventoryAdmin(admin.ModelAdmin):
    list_display = ["cluster", "refreshed_at", "error"]
    readonly_fields = [f.name for f in GpuInventory._meta.fields]
