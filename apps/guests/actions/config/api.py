"""GET/PATCH /api/v1/guests/<pk>/config/: serializers, view and `api_urlpatterns`."""

from __future__ import annotations

from django.urls import path
from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.response import Response

from apps.core.api import operation_handler
from apps.core.limits import MaxKeysValidator

from ..base import GuestActionAPIView
from ..common import guest_or_404
from .services import guest_config_update


class _NicSerializer(serializers.Serializer):
    bridge = serializers.CharField(max_length=15, required=False)
    vlan = serializers.IntegerField(required=False, allow_null=True)
    firewall = serializers.BooleanField(required=False, allow_null=True, default=None)


class _NewDiskSerializer(serializers.Serializer):
    storage = serializers.CharField(max_length=100)
    size = serializers.IntegerField(help_text="GiB")
    mountpoint = serializers.CharField(max_length=256, required=False, allow_blank=True, help_text="containers: path inside")


class GuestConfigSerializer(serializers.Serializer):
    """Every field is optional; values equal to the current ones are ignored."""

    digest = serializers.CharField(max_length=64, required=False, allow_blank=True,
                                   help_text="`digest` from GET: the change is refused (409) if the guest changed since")
    cores = serializers.IntegerField(required=False)
    memory = serializers.IntegerField(required=False, help_text="MiB")
    swap = serializers.IntegerField(required=False, help_text="MiB (containers)")
    description = serializers.CharField(max_length=8192, required=False, allow_blank=True)
    tags = serializers.ListField(max_length=32, child=serializers.CharField(max_length=64), required=False)
    protection = serializers.BooleanField(required=False, allow_null=True, default=None)
    onboot = serializers.BooleanField(required=False, allow_null=True, default=None)
    ciuser = serializers.CharField(max_length=32, required=False, allow_blank=True, help_text="cloud-init user (VMs)")
    sshkeys = serializers.CharField(max_length=16384, required=False, allow_blank=True, help_text="OpenSSH public keys, one per line")
    ip = serializers.CharField(max_length=64, required=False, allow_blank=True, help_text="'dhcp' or IPv4/prefix (VM: ipconfig0, CT: net0)")
    gateway = serializers.CharField(max_length=64, required=False, allow_blank=True)
    resize = serializers.DictField(child=serializers.IntegerField(), required=False, validators=[MaxKeysValidator(32)],
                                   help_text="disk -> new size in GiB (grow only), e.g. {\"scsi0\": 64}")
    add_disks = _NewDiskSerializer(many=True, required=False, max_length=16)
    nets = serializers.DictField(child=_NicSerializer(), required=False, validators=[MaxKeysValidator(32)], help_text="net0 -> {bridge, vlan, firewall}")
    remove_nets = serializers.ListField(max_length=32, child=serializers.CharField(max_length=16), required=False)
    add_nets = _NicSerializer(many=True, required=False, max_length=16)


class GuestConfigAPIView(GuestActionAPIView):
    """GET: the guest's config as last read, with its `digest`. PATCH/PUT: change it (202 with the
    operation; 400 field errors; 409 when the digest no longer matches, with Proxmox's message)."""

    serializer_class = GuestConfigSerializer

    @extend_schema(responses={200: inline_serializer("GuestConfigRead", fields={
        "config": serializers.DictField(), "digest": serializers.CharField(),
        "read_at": serializers.DateTimeField(allow_null=True)})})
    def get(self, request, pk):
        guest = guest_or_404(request, pk)
        return Response({"config": guest.config, "digest": guest.config_digest,
                         "read_at": guest.details_synced_at})

    @operation_handler(serializer=GuestConfigSerializer, audit="guests.guest_config")
    def patch(self, guest, data):
        return guest_config_update(guest=guest, user=self.request.user, changes=dict(data))

    put = patch


api_urlpatterns = [
    path("guests/<int:pk>/config/", GuestConfigAPIView.as_view(), name="guest-config"),
]
