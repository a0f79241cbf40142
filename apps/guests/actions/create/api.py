"""POST /api/v1/guests/create-vm/ and create-ct/: serializers, views and `api_urlpatterns`."""

from __future__ import annotations

import apps.core.api  # noqa: F401  (first: DRF's generics import our pagination class from it)
from django.core.exceptions import PermissionDenied
from django.urls import path
from drf_spectacular.utils import extend_schema
from rest_framework import exceptions, serializers
from rest_framework.permissions import IsAuthenticated
from rest_framework.generics import GenericAPIView

from apps.core.models import AuditResult
from apps.core.services import audit_log
from apps.operations.api.serializers import OperationSerializer

from ..common import accepted
from .services import guest_create_ct, guest_create_vm
from .validation import VM_OSTYPES


class _CreateCommon(serializers.Serializer):
    cluster = serializers.IntegerField(required=False, allow_null=True,
                                       help_text="Cluster id; may be left out when only one cluster is registered.")
    cores = serializers.IntegerField(required=False, help_text="vCPU cores (1-128)")
    memory = serializers.IntegerField(required=False, help_text="MiB")
    storage = serializers.CharField(required=False, allow_blank=True,
                                    help_text="Storage id for the disk/rootfs (must hold images resp. rootdir)")
    disk_size = serializers.IntegerField(required=False, help_text="GiB")
    bridge = serializers.CharField(required=False, help_text="e.g. vmbr0")
    vlan = serializers.IntegerField(required=False, allow_null=True, help_text="VLAN tag 1-4094")
    firewall = serializers.BooleanField(required=False)
    ip_mode = serializers.ChoiceField(["dhcp", "static"], required=False)
    ip = serializers.CharField(required=False, allow_blank=True, help_text="static: IPv4/prefix, e.g. 10.0.0.5/24")
    gateway = serializers.CharField(required=False, allow_blank=True)
    nameservers = serializers.CharField(required=False, allow_blank=True, help_text="IP addresses, space-separated")
    searchdomain = serializers.CharField(required=False, allow_blank=True)
    ssh_keys = serializers.CharField(required=False, allow_blank=True, help_text="OpenSSH public keys, one per line")
    node = serializers.CharField(required=False, allow_blank=True,
                                 help_text="Node name; empty = the online node with the most free memory that "
                                           "has the storage")
    tags = serializers.ListField(child=serializers.CharField(), required=False)
    pool = serializers.CharField(required=False, allow_blank=True)
    start = serializers.BooleanField(required=False, help_text="Start it once created")


class CreateVmSerializer(_CreateCommon):
    source = serializers.ChoiceField(["iso", "template"], help_text="iso: empty disk + CD-ROM; template: clone")
    iso = serializers.CharField(required=False, allow_blank=True, help_text="ISO volid, e.g. local:iso/debian.iso")
    template = serializers.IntegerField(required=False, allow_null=True, help_text="VMID of a VM template")
    clone = serializers.ChoiceField(["linked", "full"], required=False)
    name = serializers.CharField()
    ostype = serializers.ChoiceField([k for k, _ in VM_OSTYPES], required=False)
    cloudinit = serializers.BooleanField(required=False, allow_null=True, default=None,
                                         help_text="Add cloud-init settings (default: yes for templates)")
    ci_user = serializers.CharField(required=False, allow_blank=True)


class CreateCtSerializer(_CreateCommon):
    ostemplate = serializers.CharField(help_text="CT template volid, e.g. local:vztmpl/debian-12-standard.tar.zst")
    hostname = serializers.CharField()
    password = serializers.CharField(required=False, allow_blank=True, write_only=True,
                                     style={"input_type": "password"}, help_text="root password (or ssh_keys)")
    unprivileged = serializers.BooleanField(required=False, default=True)
    nesting = serializers.BooleanField(required=False)
    swap = serializers.IntegerField(required=False, help_text="MiB")


class _CreateApi(GenericAPIView):
    permission_classes = [IsAuthenticated]
    serializer_class: type[serializers.Serializer]
    service = None
    what = ""

    def post(self, request):
        body = self.serializer_class(data=request.data)
        body.is_valid(raise_exception=True)
        try:
            operation = type(self).service(user=request.user, data=body.validated_data)
        except PermissionDenied as exc:
            audit_log(user=request.user, action="guests.guest_create", target=self.what, result=AuditResult.DENIED,
                      request=request)
            raise exceptions.PermissionDenied(str(exc))
        audit_log(user=request.user, action="guests.guest_create", target=operation.target_repr,
                  result=AuditResult.ACCEPTED, request=request, detail={"operation": str(operation.pk)})
        return accepted(request, operation)


class GuestCreateVmApi(_CreateApi):
    """Create a VM from an ISO image or by cloning a template. 400 with field errors when the
    request does not fit the inventory; 202 with the operation otherwise."""

    serializer_class = CreateVmSerializer
    service = staticmethod(guest_create_vm)
    what = "VM"

    @extend_schema(request=CreateVmSerializer, responses={202: OperationSerializer}, summary="Create a VM")
    def post(self, request):
        return super().post(request)


class GuestCreateCtApi(_CreateApi):
    """Create a container from a CT template (vztmpl). 400 with field errors, or 202 with the operation."""

    serializer_class = CreateCtSerializer
    service = staticmethod(guest_create_ct)
    what = "CT"

    @extend_schema(request=CreateCtSerializer, responses={202: OperationSerializer}, summary="Create a container")
    def post(self, request):
        return super().post(request)


api_urlpatterns = [
    path("guests/create-vm/", GuestCreateVmApi.as_view(), name="guest-create-vm"),
    path("guests/create-ct/", GuestCreateCtApi.as_view(), name="guest-create-ct"),
]
