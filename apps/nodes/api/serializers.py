from rest_framework import serializers

from ..choices import TlsMode
from ..forms import normalize_api_url
from ..models import Cluster, Node


class ClusterSerializer(serializers.ModelSerializer):
    """`token_secret` and `root_password` are write-only: accepted on create/update, never returned;
    `root_credential` says whether a root@pam password is stored."""

    token_secret = serializers.CharField(max_length=256, write_only=True, required=False, allow_blank=True,
                                         trim_whitespace=True, style={"input_type": "password"})
    root_password = serializers.CharField(
        max_length=256, write_only=True, required=False, allow_blank=True, trim_whitespace=False,
        style={"input_type": "password"},
        help_text="optional root@pam password, only for container device passthrough (devN), which Proxmox grants "
                  "root@pam alone; tested by logging in, write-only; empty keeps the stored one")
    forget_root_password = serializers.BooleanField(write_only=True, required=False, default=False,
                                                    help_text="remove the stored root@pam password")
    root_credential = serializers.BooleanField(source="has_root_credential", read_only=True,
                                               help_text="a root@pam password is stored (never returned)")
    name = serializers.CharField(required=False, allow_blank=True, max_length=100)
    tls_mode = serializers.ChoiceField(choices=TlsMode.choices, default=TlsMode.PIN)
    node_count = serializers.IntegerField(read_only=True)
    nodes_online = serializers.IntegerField(read_only=True)
    sync_age = serializers.FloatField(read_only=True)
    is_stale = serializers.BooleanField(read_only=True)
    insecure = serializers.BooleanField(source="is_insecure", read_only=True)
    url = serializers.HyperlinkedIdentityField(view_name="nodes-api:cluster-detail")

    class Meta:
        model = Cluster
        fields = ["id", "url", "name", "api_url", "token_id", "token_secret", "root_password", "forget_root_password",
                  "root_credential", "tls_mode", "fingerprint", "ca_cert",
                  "insecure", "pve_cluster_name", "pve_version", "quorate", "status", "last_error", "last_sync_at",
                  "sync_age", "is_stale", "next_sync_at", "last_sync_duration", "node_count", "nodes_online",
                  "cpu_used", "cpu_total", "mem_used", "mem_total", "storage_used", "storage_total",
                  "sync_interval_active", "sync_interval_idle", "created", "updated"]
        read_only_fields = ["pve_cluster_name", "pve_version", "quorate", "status", "last_error", "last_sync_at",
                            "next_sync_at", "last_sync_duration", "cpu_used", "cpu_total", "mem_used", "mem_total",
                            "storage_used", "storage_total", "created", "updated"]
        extra_kwargs = {"ca_cert": {"max_length": 32768}}  # a PEM chain of a few certificates

    def validate_api_url(self, value):
        return normalize_api_url(value)

    def validate(self, attrs):
        if self.instance is None and not attrs.get("token_secret"):
            raise serializers.ValidationError({"token_secret": ["This field is required."]})
        return attrs


class NodeSerializer(serializers.ModelSerializer):
    url = serializers.HyperlinkedIdentityField(view_name="nodes-api:node-detail")
    cluster_name = serializers.CharField(source="cluster.name", read_only=True)
    uptime = serializers.FloatField(read_only=True)

    class Meta:
        model = Node
        fields = ["id", "url", "cluster", "cluster_name", "name", "nodeid", "ip", "status", "online", "level",
                  "ha_state", "cpu", "maxcpu", "mem", "maxmem", "disk", "maxdisk", "booted_at", "uptime", "updated"]
        read_only_fields = fields
