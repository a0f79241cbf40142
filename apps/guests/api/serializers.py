from rest_framework import serializers

from ..choices import PowerAction
from ..models import Guest, Snapshot


class GuestSerializer(serializers.ModelSerializer):
    url = serializers.HyperlinkedIdentityField(view_name="guests-api:guest-detail")
    node = serializers.SlugRelatedField(slug_field="name", read_only=True)
    uptime = serializers.FloatField(read_only=True, allow_null=True)

    class Meta:
        model = Guest
        fields = ["id", "url", "cluster", "vmid", "type", "name", "node", "status", "template", "lock", "tags",
                  "pool", "hastate", "maxcpu", "maxmem", "maxdisk", "cpu", "mem", "disk", "uptime", "updated"]
        read_only_fields = fields


class GuestDetailSerializer(GuestSerializer):
    class Meta(GuestSerializer.Meta):
        fields = GuestSerializer.Meta.fields + ["config", "details_synced_at"]
        read_only_fields = fields


class SnapshotSerializer(serializers.ModelSerializer):
    class Meta:
        model = Snapshot
        fields = ["id", "guest", "name", "description", "snaptime", "parent", "vmstate"]
        read_only_fields = fields


class PowerActionSerializer(serializers.Serializer):
    timeout = serializers.IntegerField(required=False, min_value=1, max_value=3600,
                                       help_text="shutdown only: seconds before stopping it hard (default 60)")


class BulkPowerSerializer(serializers.Serializer):
    action = serializers.ChoiceField(choices=PowerAction.choices)
    ids = serializers.ListField(child=serializers.IntegerField(min_value=1), min_length=1, max_length=500)
    timeout = serializers.IntegerField(required=False, min_value=1, max_value=3600)
