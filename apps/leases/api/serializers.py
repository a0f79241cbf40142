from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from .. import services
from ..models import Lease


class LeaseSerializer(serializers.ModelSerializer):
    guest_name = serializers.CharField(source="guest.name", read_only=True)
    vmid = serializers.IntegerField(source="guest.vmid", read_only=True)
    tenant = serializers.SlugRelatedField(source="guest.tenant", slug_field="slug", read_only=True, allow_null=True,
                                          help_text="null for an operators' guest")
    state = serializers.SerializerMethodField(help_text="active | expiring | expired | deleting")
    delete_at = serializers.SerializerMethodField(help_text="When the guest is deleted unless the lease is extended")
    max_extension_days = serializers.SerializerMethodField()

    class Meta:
        model = Lease
        fields = ["id", "guest", "guest_name", "vmid", "tenant", "expires_at", "state", "delete_at",
                  "max_extension_days", "extensions", "warned_at", "stopped_at", "stop_operation_id",
                  "delete_operation_id", "created", "updated"]
        read_only_fields = fields

    def get_state(self, lease) -> str:
        return services.lease_state(lease)

    @extend_schema_field(OpenApiTypes.DATETIME)
    def get_delete_at(self, lease):
        return serializers.DateTimeField().to_representation(services.delete_at(lease))

    def get_max_extension_days(self, lease) -> int:
        return services.extension_limits(lease.guest)[0]


class LeaseSetSerializer(serializers.Serializer):
    guest = serializers.IntegerField(min_value=1, max_value=2147483647)
    expires_at = serializers.DateTimeField(allow_null=True, help_text="null: no lease")


class LeaseExtendSerializer(serializers.Serializer):
    days = serializers.IntegerField(min_value=1, max_value=services.MAX_DAYS)
