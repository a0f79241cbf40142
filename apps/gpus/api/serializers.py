from rest_framework import serializers

from ..choices import ProfileKind
from ..models import GpuAllocation, GpuDevice, GpuProfile, MdevType, PciMapping


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


class GpuProfileSerializer(serializers.ModelSerializer):
    """A GPU profile; `free` = free places per node now (placement's view)."""

    devices = serializers.PrimaryKeyRelatedField(many=True, read_only=True)
    tenants = serializers.SlugRelatedField(slug_field="slug", many=True, read_only=True)
    free = serializers.SerializerMethodField()
    quota_resource = serializers.CharField(read_only=True)

    class Meta:
        model = GpuProfile
        fields = ["id", "cluster", "name", "kind", "description", "devices", "mapping_id", "mdev_type",
                  "device_nodes", "gid", "mode", "shares", "q35", "ovmf", "tenants", "free", "quota_resource",
                  "created", "updated"]
        read_only_fields = fields

    def get_free(self, profile) -> dict[str, int]:
        from ..placement import free_by_node

        return free_by_node(profile)


class GpuProfileWriteSerializer(serializers.Serializer):
    """What an operator sends; every inventory check is the service's (400 naming the field)."""

    cluster = serializers.IntegerField(min_value=1)
    name = serializers.CharField(max_length=100)
    kind = serializers.ChoiceField(ProfileKind.values)
    description = serializers.CharField(max_length=300, required=False, allow_blank=True)
    devices = serializers.ListField(child=serializers.IntegerField(min_value=1), max_length=64,
                                    help_text="GPU ids (/api/v1/gpus/) backing the profile")
    mapping_id = serializers.CharField(max_length=100, required=False, allow_blank=True,
                                       help_text="passthrough/mdev: the cluster PCI mapping the portal keeps")
    mdev_type = serializers.CharField(max_length=100, required=False, allow_blank=True)
    device_nodes = serializers.ListField(child=serializers.CharField(max_length=128), required=False, max_length=16)
    gid = serializers.IntegerField(min_value=0, required=False, allow_null=True)
    mode = serializers.CharField(max_length=4, required=False, allow_blank=True)
    shares = serializers.IntegerField(required=False, allow_null=True,
                                      help_text="guests per card (containers; mdev: default the type's max)")
    q35 = serializers.BooleanField(required=False, default=True)
    ovmf = serializers.BooleanField(required=False, default=False)
    tenants = serializers.ListField(child=serializers.IntegerField(min_value=1), required=False, max_length=500,
                                    help_text="tenant ids the profile is offered to")


class GpuAllocationSerializer(serializers.ModelSerializer):
    profile = serializers.PrimaryKeyRelatedField(read_only=True)
    profile_name = serializers.CharField(source="profile.name", read_only=True)
    node = serializers.CharField(source="device.node.name", read_only=True)
    pci_id = serializers.CharField(source="device.pci_id", read_only=True)
    tenant = serializers.SlugRelatedField(slug_field="slug", read_only=True)

    class Meta:
        model = GpuAllocation
        fields = ["id", "cluster", "vmid", "guest_name", "profile", "profile_name", "node", "pci_id", "device",
                  "tenant", "slots", "state", "operation_id", "created"]
        read_only_fields = fields


class GpuAttachSerializer(serializers.Serializer):
    guest = serializers.IntegerField(min_value=1, help_text="guest id (/api/v1/guests/); it must be stopped")
    gpu_profile = serializers.IntegerField(min_value=1, help_text="GPU profile id")
