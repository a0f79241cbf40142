from rest_framework import serializers

from ..choices import Affinity, ResourceState, RuleType
from ..models import HaClusterState, HaEvent, HaResource, HaRule, ReplicationJob


class HaClusterStateSerializer(serializers.ModelSerializer):
    cluster_name = serializers.CharField(source="cluster.name", read_only=True)
    votes_needed = serializers.IntegerField(read_only=True)
    warnings = serializers.SerializerMethodField()

    class Meta:
        model = HaClusterState
        fields = ["cluster", "cluster_name", "available", "quorate", "quorum_status", "votes", "expected_votes",
                  "votes_needed", "master_node", "master_state", "fencing", "resource_mode", "lrms", "members",
                  "lost_at", "maintenance", "ceph", "refreshed_at", "refresh_error", "updated", "warnings"]
        read_only_fields = fields

    def get_warnings(self, obj) -> list[dict]:
        from ..health import cluster_warnings
        from ..views import ha_resource_list_all

        replicated = set(ReplicationJob.objects.active().filter(cluster_id=obj.cluster_id).values_list("vmid", flat=True))
        return [{"level": w.level, "text": w.text, "sid": w.sid}
                for w in cluster_warnings(obj.cluster, obj, list(ha_resource_list_all(obj.cluster)), replicated)]


class HaResourceSerializer(serializers.ModelSerializer):
    guest_name = serializers.CharField(source="guest.name", read_only=True, default="")

    class Meta:
        model = HaResource
        fields = ["id", "cluster", "sid", "vmid", "guest", "guest_name", "request_state", "crm_state", "state", "node",
                  "max_restart", "max_relocate", "failback", "comment", "group", "updated"]
        read_only_fields = fields


class HaResourceSetSerializer(serializers.Serializer):
    guests = serializers.ListField(child=serializers.IntegerField(min_value=1, max_value=2**63 - 1), allow_empty=False,
                                   max_length=1000)
    state = serializers.ChoiceField(choices=ResourceState.choices, default=ResourceState.STARTED)
    max_restart = serializers.IntegerField(min_value=0, max_value=10, default=1)
    max_relocate = serializers.IntegerField(min_value=0, max_value=10, default=1)
    failback = serializers.BooleanField(default=True)
    comment = serializers.CharField(max_length=4096, required=False, allow_blank=True, default="")


class HaMoveSerializer(serializers.Serializer):
    node = serializers.CharField(max_length=100)
    relocate = serializers.BooleanField(default=False)


class HaRuleSerializer(serializers.ModelSerializer):
    sentence = serializers.CharField(read_only=True)

    class Meta:
        model = HaRule
        fields = ["id", "cluster", "rule", "type", "resources", "nodes", "strict", "affinity", "disable", "comment",
                  "order", "errors", "from_group", "sentence", "updated"]
        read_only_fields = fields


class HaRuleWriteSerializer(serializers.Serializer):
    """Shape only; what Proxmox would refuse (unmanaged resources, unknown nodes, a resource in two
    node-affinity rules) is checked by the service and answered as field errors too."""

    cluster = serializers.IntegerField(required=False)
    rule = serializers.CharField(max_length=100, required=False)
    type = serializers.ChoiceField(choices=RuleType.choices, required=False)
    resources = serializers.ListField(child=serializers.CharField(max_length=40), allow_empty=False, max_length=1000)
    nodes = serializers.DictField(child=serializers.IntegerField(min_value=0, max_value=1000), required=False)
    strict = serializers.BooleanField(default=False)
    affinity = serializers.ChoiceField(choices=Affinity.choices, required=False)
    disable = serializers.BooleanField(default=False)
    comment = serializers.CharField(max_length=4096, required=False, allow_blank=True, default="")


class HaEventSerializer(serializers.ModelSerializer):
    kind_display = serializers.CharField(source="get_kind_display", read_only=True)

    class Meta:
        model = HaEvent
        fields = ["id", "cluster", "at", "kind", "kind_display", "sid", "guest", "node", "target", "message", "why"]
        read_only_fields = fields


class ReplicationJobSerializer(serializers.ModelSerializer):
    class Meta:
        model = ReplicationJob
        fields = ["id", "cluster", "job_id", "vmid", "guest", "source", "target", "schedule", "rate", "comment",
                  "disable", "remove_job", "last_sync", "last_try", "next_sync", "duration", "fail_count", "error", "updated"]
        read_only_fields = fields


class MaintenanceSerializer(serializers.Serializer):
    node = serializers.CharField(max_length=100)
    enable = serializers.BooleanField()


class NodeChoiceSerializer(serializers.Serializer):
    node = serializers.CharField()
    online = serializers.BooleanField()
    priority = serializers.IntegerField(allow_null=True, help_text="null: the rule does not allow this node")
    load = serializers.IntegerField()
    mem_share = serializers.FloatField()
    notes = serializers.ListField(child=serializers.CharField())
    chosen = serializers.BooleanField()


class PlacementSerializer(serializers.Serializer):
    """Why an HA guest runs where it runs, and where the CRM would restart it (explain/)."""

    sid = serializers.CharField()
    node = serializers.CharField()
    rule = serializers.CharField(help_text="The node-affinity rule in effect ('' for none)")
    strict = serializers.BooleanField()
    together = serializers.ListField(child=serializers.CharField())
    apart = serializers.ListField(child=serializers.CharField())
    choices = NodeChoiceSerializer(many=True)
    target = serializers.CharField(allow_null=True, help_text="Where recovery would put it (null: nowhere)")
    reasons = serializers.ListField(child=serializers.CharField())


class ReplicationJobCreateSerializer(serializers.Serializer):
    """A new job: the guest (by id) and the node that receives its copies. What Proxmox would refuse
    (non-ZFS disks, the guest's own node, a second job to the same node, a bad schedule, no quorum)
    is checked by the service and answered as field errors too."""

    guest = serializers.IntegerField(min_value=1, max_value=2**63 - 1, help_text="Guest id (not the VMID)")
    target = serializers.CharField(max_length=100, help_text="Node that receives the copies")
    jobnum = serializers.IntegerField(min_value=0, max_value=999_999_999, required=False, allow_null=True,
                                      help_text="The job id is <vmid>-<jobnum>; default: the guest's lowest free number")
    schedule = serializers.CharField(max_length=128, required=False, allow_blank=True, default="*/15",
                                     help_text="PVE calendar event, e.g. */15, hourly, mon..fri 22:00")
    rate = serializers.FloatField(min_value=1, max_value=1_000_000, required=False, allow_null=True, default=None,
                                  help_text="Rate limit in megabytes per second (Proxmox's unit, 10^6 bytes); null: none")
    comment = serializers.CharField(max_length=4096, required=False, allow_blank=True, default="",
                                    trim_whitespace=False)
    disable = serializers.BooleanField(default=False)


class ReplicationJobUpdateSerializer(serializers.Serializer):
    """Schedule, rate limit, comment and the disabled flag; PATCH keeps what it leaves out, PUT
    resets it (no rate limit, no comment, enabled, schedule */15). The target is fixed."""

    schedule = serializers.CharField(max_length=128, required=False, allow_blank=True, default="*/15")
    rate = serializers.FloatField(min_value=1, max_value=1_000_000, required=False, allow_null=True, default=None)
    comment = serializers.CharField(max_length=4096, required=False, allow_blank=True, default="",
                                    trim_whitespace=False)
    disable = serializers.BooleanField(default=False)
    target = serializers.CharField(max_length=100, required=False, help_text="Fixed: only its current value is accepted")
