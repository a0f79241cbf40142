"""GET/PATCH /api/v1/guests/<pk>/config/: serializers, view and `api_urlpatterns`."""

from __future__ import annotations

from django.urls import path
from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.permissions import IsAuthenticated
from rest_framework.response import Response
from rest_framework.views import APIView

from apps.core import api as _core_api  # noqa: F401  (loads DRF generics before our schema decorators run)
from apps.core.models import AuditResult
from apps.operations.api.serializers import OperationSerializer

from ...models import Guest
from ..common import ActionRefused, accepted, audit, guest_or_404, refused
from .services import guest_config_update


class _NicSerializer(serializers.Serializer):
    bridge = serializers.CharField(required=False)
    vlan = serializers.IntegerField(required=False, allow_null=True)
    firewall = serializers.BooleanField(required=False, allow_null=True, default=None)


class _NewDiskSerializer(serializers.Serializer):
    storage = serializers.CharField()
    size = serializers.IntegerField(help_text="GiB")
    mountpoint = serializers.CharField(required=False, allow_blank=True, help_text="containers: path inside")


class GuestConfigSerializer(serializers.Serializer):
    """Every field is optional; values equal to the current ones are ignored."""

    digest = serializers.CharField(required=False, allow_blank=True,
                                   help_text="`digest` from GET: the change is refused (409) if the guest changed since")
    cores = serializers.IntegerField(required=False)
    memory = serializers.IntegerField(required=False, help_text="MiB")
    swap = serializers.IntegerField(required=False, help_text="MiB (containers)")
    description = serializers.CharField(required=False, allow_blank=True)
    tags = serializers.ListField(child=serializers.CharField(), required=False)
    protection = serializers.BooleanField(required=False, allow_null=True, default=None)
    onboot = serializers.BooleanField(required=False, allow_null=True, default=None)
    ciuser = serializers.CharField(required=False, allow_blank=True, help_text="cloud-init user (VMs)")
    sshkeys = serializers.CharField(required=False, allow_blank=True, help_text="OpenSSH public keys, one per line")
    ip = serializers.CharField(required=False, allow_blank=True, help_text="'dhcp' or IPv4/prefix (VM: ipconfig0, CT: net0)")
    gateway = serializers.CharField(required=False, allow_blank=True)
    resize = serializers.DictField(child=serializers.IntegerField(), required=False,
                                   help_text="disk -> new size in GiB (grow only), e.g. {\"scsi0\": 64}")
    add_disks = _NewDiskSerializer(many=True, required=False)
    nets = serializers.DictField(child=_NicSerializer(), required=False, help_text="net0 -> {bridge, vlan, firewall}")
    remove_nets = serializers.ListField(child=serializers.CharField(), required=False)
    add_nets = _NicSerializer(many=True, required=False)


class GuestConfigAPIView(APIView):
    """GET: the guest's config as last read, with its `digest`. PATCH/PUT: change it (202 with the
    operation; 400 field errors; 409 when the digest no longer matches, with Proxmox's message)."""

    permission_classes = [IsAuthenticated]
    serializer_class = GuestConfigSerializer

    def _guest(self, request, pk) -> Guest:
        return guest_or_404(request, pk)

    @extend_schema(responses={200: inline_serializer("GuestConfigRead", fields={
        "config": serializers.DictField(), "digest": serializers.CharField(),
        "read_at": serializers.DateTimeField(allow_null=True)})})
    def get(self, request, pk):
        guest = self._guest(request, pk)
        return Response({"config": guest.config, "digest": guest.config_digest,
                         "read_at": guest.details_synced_at})

    @extend_schema(request=GuestConfigSerializer, responses={202: OperationSerializer})
    def patch(self, request, pk):
        guest = self._guest(request, pk)
        body = GuestConfigSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        try:
            operation = guest_config_update(guest=guest, user=request.user, changes=dict(body.validated_data))
        except ActionRefused as exc:
            audit(request, "guests.guest_config", guest, result=AuditResult.FAILURE, error=exc.message)
            return refused(exc)
        audit(request, "guests.guest_config", guest, operation)
        return accepted(request, operation)

    put = patch


api_urlpatterns = [
    path("guests/<int:pk>/config/", GuestConfigAPIView.as_view(), name="guest-config"),
]
