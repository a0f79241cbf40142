"""The IPS (Suricata) API: a guest's IPS switch and alerts, everyone's visible alerts, and the
clusters' SSH channels (operators; auditors read). The channel's private key is never returned.

Without a configured channel, a guest's IPS answers `available: false` with the `reason`, and a
switch is refused (409) with it. A node that cannot be reached or refuses the key answers 502; a
firewall file that changed since `digest` was read answers 409.
"""

from __future__ import annotations

from django.http import Http404
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers
from rest_framework.response import Response

from apps.nodes.selectors import cluster_get
from apps.permissions.policy import can, check

from .. import ips
from ..selectors import guest_target
from .views import FirewallAPIView, FirewallSchema

MAX_ALERTS = 500


class IpsSerializer(serializers.Serializer):
    enabled = serializers.BooleanField(help_text="Suricata inspects the guest's inbound traffic (ips: 1)")
    queues = serializers.CharField(required=False, allow_blank=True, max_length=11,
                                   help_text="NFQUEUE queue (0) or range (0:3); empty removes the line, absent keeps it")
    digest = serializers.CharField(required=False, allow_blank=True, max_length=64,
                                   help_text="`digest` from GET: refused (409) if the file changed since")


class ChannelCreateSerializer(serializers.Serializer):
    username = serializers.CharField(required=False, default="root", max_length=32)
    port = serializers.IntegerField(required=False, default=22, min_value=1, max_value=65535)
    trust_on_first_use = serializers.BooleanField(required=False, default=True)


class ChannelUpdateSerializer(serializers.Serializer):
    enabled = serializers.BooleanField(required=False)
    username = serializers.CharField(required=False, max_length=32)
    port = serializers.IntegerField(required=False, min_value=1, max_value=65535)
    trust_on_first_use = serializers.BooleanField(required=False)


class HostSerializer(serializers.Serializer):
    address = serializers.CharField(required=False, allow_blank=True, max_length=255,
                                    help_text="empty: the node's address in Proxmox")
    port = serializers.IntegerField(required=False, allow_null=True, min_value=1, max_value=65535)
    host_key = serializers.CharField(required=False, allow_blank=True, max_length=16384,
                                     help_text="pin this host key ('ssh-ed25519 AAAA...', a known_hosts line)")
    pin = serializers.ChoiceField(required=False, choices=["scan", "forget"],
                                  help_text="scan: pin the key the node presents now; forget: unpin")


def alert_json(alert) -> dict:
    guest = alert.guest
    return {
        "id": alert.pk, "timestamp": alert.timestamp, "cluster": alert.cluster_id, "node": alert.node,
        "guest": guest.pk if guest else None, "vmid": guest.vmid if guest else None,
        "guest_name": guest.name if guest else "", "direction": alert.direction, "matched_by": alert.matched_by,
        "signature": alert.signature, "signature_id": alert.signature_id, "category": alert.category,
        "severity": alert.severity, "action": alert.action, "proto": alert.proto, "src_ip": alert.src_ip,
        "src_port": alert.src_port, "dest_ip": alert.dest_ip, "dest_port": alert.dest_port,
    }


def _limit(request) -> int:
    try:
        return max(1, min(int(request.query_params.get("limit", 100)), MAX_ALERTS))
    except ValueError:
        return 100


class IpsAPIMixin:
    def handle_exception(self, exc):
        if isinstance(exc, ips.IpsRefused):
            return Response({"detail": exc.message}, status=exc.status)
        return super().handle_exception(exc)


class GuestIpsAPIView(IpsAPIMixin, FirewallAPIView):
    """GET: the guest's IPS state read from its firewall file (`available: false` and `reason`
    without an SSH channel). PUT/PATCH {"enabled", "queues", "digest"}: switch it (audited)."""

    @extend_schema(request=None, responses={200: dict})
    def get(self, request, **kwargs):
        target = self.target()
        return Response(ips.ips_read(user=request.user, guest=target.guest).as_dict())

    @extend_schema(request=IpsSerializer, responses={200: dict})
    def put(self, request, **kwargs):
        target = self.target()
        data = self.body(IpsSerializer)
        state = ips.ips_set(user=request.user, guest=target.guest, enabled=data["enabled"],
                            queues=data.get("queues"), digest=(data.get("digest") or "").strip() or None)
        return Response(state.as_dict())

    patch = put


_ALERT_PARAMS = [OpenApiParameter("limit", int, description=f"alerts, newest first (1-{MAX_ALERTS}, default 100)"),
                 OpenApiParameter("hours", int, description="hours of per-hour counts (1-168, default 24)")]


def _hours(request) -> int:
    try:
        return max(1, min(int(request.query_params.get("hours", 24)), 168))
    except ValueError:
        return 24


class GuestIpsAlertsAPIView(FirewallAPIView):
    """The guest's Suricata alerts, newest first, and their count per hour."""

    @extend_schema(request=None, responses={200: dict}, parameters=_ALERT_PARAMS)
    def get(self, request, **kwargs):
        target = self.target()
        check(request.user, "firewall.view", target.guest)
        found = ips.alerts_visible(user=request.user).filter(guest=target.guest)
        rows = [alert_json(a) for a in found[:_limit(request)]]
        return Response({"count": found.count(), "counts": ips.alert_counts(found, hours=_hours(request)),
                         "results": rows})


class IpsAlertsAPIView(FirewallAPIView):
    """Every alert the caller may see (a tenant: its guests'), newest first; `cluster`, `guest`
    narrow it; `unmatched=1` (operators) the alerts no guest's addresses matched."""

    @extend_schema(request=None, responses={200: dict}, parameters=[
        *_ALERT_PARAMS, OpenApiParameter("cluster", int), OpenApiParameter("guest", int),
        OpenApiParameter("unmatched", bool)])
    def get(self, request, **kwargs):
        found = ips.alerts_visible(user=request.user)
        for name in ("cluster", "guest"):
            value = request.query_params.get(name)
            if value not in (None, ""):
                if not value.isdigit():
                    raise serializers.ValidationError({name: ["a whole number"]})
                found = found.filter(**{f"{name}_id": int(value)})
        if request.query_params.get("unmatched") in ("1", "true"):
            found = found.filter(guest__isnull=True)
        rows = [alert_json(a) for a in found[:_limit(request)]]
        return Response({"count": found.count(), "counts": ips.alert_counts(found, hours=_hours(request)),
                         "results": rows})


def channel_json(channel, cluster) -> dict:
    if channel is None:
        return {"configured": False, "reason": ips.unavailable_reason(cluster)}
    return {
        "configured": True, "enabled": channel.enabled, "username": channel.username, "port": channel.port,
        "public_key": channel.public_key, "key_fingerprint": channel.key_fingerprint,
        "key_created": channel.key_created, "trust_on_first_use": channel.trust_on_first_use,
        "last_ok_at": channel.last_ok_at, "last_error": channel.last_error, "reason": ips.unavailable_reason(cluster, channel),
        "nodes": ips.hosts_view(channel),
    }


class ChannelAPIView(IpsAPIMixin, FirewallAPIView):
    """The cluster's SSH channel for IPS (operators; auditors read; tenants 404). POST creates it
    with a new key pair: install `public_key` for root on the nodes. PATCH changes its settings,
    DELETE removes it (and its pinned host keys and read positions)."""

    kind = "cluster"
    schema = FirewallSchema()

    def channel_target(self, write: bool):
        cluster = cluster_get(user=self.request.user, pk=self.kwargs["pk"])
        if cluster is None or not can(self.request.user, "firewall.datacenter_view"):
            raise Http404("not found")
        check(self.request.user, "firewall.manage" if write else "firewall.datacenter_view", cluster)
        return cluster, ips.channel_of(cluster)

    def _existing(self):
        cluster, channel = self.channel_target(write=True)
        if channel is None:
            raise Http404("this cluster has no SSH channel")
        return cluster, channel

    @extend_schema(request=None, responses={200: dict})
    def get(self, request, **kwargs):
        cluster, channel = self.channel_target(write=False)
        return Response(channel_json(channel, cluster))

    @extend_schema(request=ChannelCreateSerializer, responses={201: dict})
    def post(self, request, **kwargs):
        cluster, _ = self.channel_target(write=True)
        data = self.body(ChannelCreateSerializer)
        channel = ips.channel_create(user=request.user, cluster=cluster, **data)
        return Response(channel_json(channel, cluster), status=201)

    @extend_schema(request=ChannelUpdateSerializer, responses={200: dict})
    def patch(self, request, **kwargs):
        cluster, channel = self._existing()
        data = self.body(ChannelUpdateSerializer)
        return Response(channel_json(ips.channel_update(user=request.user, channel=channel, **data), cluster))

    @extend_schema(request=None, responses={204: None})
    def delete(self, request, **kwargs):
        _, channel = self._existing()
        ips.channel_delete(user=request.user, channel=channel)
        return Response(status=204)


class ChannelKeyAPIView(ChannelAPIView):
    """POST: replace the channel's key pair (install the new public key; remove the old one)."""

    @extend_schema(request=None, responses={200: dict})
    def post(self, request, **kwargs):
        cluster, channel = self._existing()
        return Response(channel_json(ips.channel_new_key(user=request.user, channel=channel), cluster))

    http_method_names = ["post", "options"]


class ChannelTestAPIView(ChannelAPIView):
    """POST: log in to every node; per node "ok" or what went wrong."""

    @extend_schema(request=None, responses={200: dict})
    def post(self, request, **kwargs):
        _, channel = self._existing()
        return Response({"nodes": ips.channel_test(user=request.user, channel=channel)})

    http_method_names = ["post", "options"]


class ChannelReadAPIView(ChannelAPIView):
    """POST: read the nodes' new alerts now (what the periodic task does)."""

    @extend_schema(request=None, responses={200: dict})
    def post(self, request, **kwargs):
        cluster, _ = self._existing()
        result = ips.alerts_ingest(cluster.pk)
        return Response({"stored": result.stored, "seen": result.seen, "unmatched": result.unmatched,
                         "nodes": result.nodes, "skipped": result.skipped})

    http_method_names = ["post", "options"]


class ChannelHostAPIView(ChannelAPIView):
    """PATCH {address, port, host_key, pin}: how the channel reaches one node, and its host key."""

    @extend_schema(request=HostSerializer, responses={200: dict})
    def patch(self, request, node, **kwargs):
        cluster, channel = self._existing()
        data = self.body(HostSerializer)
        port = data.get("port", None) if "port" in data else None
        if "port" in data and data["port"] is None:
            port = ""
        ips.host_update(user=request.user, channel=channel, node=node, address=data.get("address"), port=port,
                        host_key=data.get("host_key") or None)
        if data.get("pin") == "scan":
            ips.host_scan(user=request.user, channel=channel, node=node)
        elif data.get("pin") == "forget":
            ips.host_forget(user=request.user, channel=channel, node=node)
        found = next((h for h in ips.hosts_view(channel) if h["node"] == node), None)
        return Response(found)

    http_method_names = ["patch", "options"]
