from rest_framework import serializers

from ..models import GpuDevice, MdevType, PciMapping


class MdevTypeSerializer(serializers.ModelSerializer):
    class Meta:
        model = MdevType
        fields = ["type", "name", "description", "available", "max_instances"]
        read_only_fields = fields


class GpuDeviceSerializer(serializers.ModelSerializer):
    url = serializers.HyperlinkedIdentityField(view_name="gpus-api:gpudevice-detail")
    node = serializers.SlugRelatedField(slug_field="name", read_only=True)
    name = serializers.CharField(read_only=True)
    mode = serializers.CharField(read_only=True)
    mdev_types = MdevTypeSerializer(many=True, read_only=True)
    mappings = serializers.SlugRelatedField(slug_field="mapping_id", many=True, read_only=True)

    class Meta:
        model = GpuDevice
        fields = ["id", "url", "cluster", "node", "pci_id", "name", "mode", "vendor_id", "device_id", "vendor_name",
                  "device_name", "subsystem_vendor_id", "subsystem_device_id", "subsystem_vendor_name",
                  "subsystem_device_name", "pci_class", "iommugroup", "mdev_capable", "stale", "last_seen",
                  "mdev_types", "mappings"]
        read_only_fields = fields


class PciMappingSerializer(serializers.ModelSerializer):
    devices = serializers.PrimaryKeyRelatedField(many=True, read_only=True)

    class Meta:
        model = PciMapping
        fields = ["id", "cluster", "mapping_id", "description", "mdev", "live_migration_capable", "map", "devices",
                  "updated"]
        read_only_fields = fields


class GpuRefreshSerializer(serializers.Serializer):
    cluster = serializers.IntegerField(min_value=1, help_text="id of the cluster to re-read")
