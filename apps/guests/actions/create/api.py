"""POST /api/v1/guests/create-vm/ and create-ct/: serializers, views and `api_urlpatterns`."""

from __future__ import annotations

from apps.core.api import ActionAPIMixin, operation_handler  # first: DRF's generics import our pagination from it
from django.urls import path
from rest_framework import serializers
from rest_framework.generics import GenericAPIView

from apps.approvals.api.mixins import ApprovalAwareMixin

from .services import guest_create_ct, guest_create_vm
from .validation import VM_OSTYPES


class _CreateCommon(serializers.Serializer):
    cluster = serializers.IntegerField(min_value=1, max_value=2147483647, required=False, allow_null=True,
                                       help_text="Cluster id; may be left out when only one cluster is registered.")
    cores = serializers.IntegerField(required=False, help_text="vCPU cores (1-128)")
    memory = serializers.IntegerField(required=False, help_text="MiB")
    storage = serializers.CharField(max_length=100, required=False, allow_blank=True,
                                    help_text="Storage id for the disk/rootfs (must hold images resp. rootdir)")
    disk_size = serializers.IntegerField(required=False, help_text="GiB")
    bridge = serializers.CharField(max_length=15, required=False, help_text="e.g. vmbr0")
    vlan = serializers.IntegerField(required=False, allow_null=True, help_text="VLAN tag 1-4094")
    firewall = serializers.BooleanField(required=False)
    ip_mode = serializers.ChoiceField(["dhcp", "static"], required=False)
    ip = serializers.CharField(max_length=64, required=False, allow_blank=True, help_text="static: IPv4/prefix, e.g. 10.0.0.5/24")
    gateway = serializers.CharField(max_length=64, required=False, allow_blank=True)
    nameservers = serializers.CharField(max_length=512, required=False, allow_blank=True, help_text="IP addresses, space-separated")
    searchdomain = serializers.CharField(max_length=253, required=False, allow_blank=True)
    ssh_keys = serializers.CharField(max_length=16384, required=False, allow_blank=True, help_text="OpenSSH public keys, one per line")
    node = serializers.CharField(max_length=63, required=False, allow_blank=True,
                                 help_text="Node name; empty = the online node with the most free memory that "
                                           "has the storage")
    tags = serializers.ListField(max_length=32, child=serializers.CharField(max_length=64), required=False)
    pool = serializers.CharField(max_length=64, required=False, allow_blank=True)
    start = serializers.BooleanField(required=False, help_text="Start it once created")
    gpu_profile = serializers.IntegerField(min_value=1, max_value=2147483647, required=False, allow_null=True,
                                           help_text="GPU profile id (/api/v1/gpu-profiles/): the guest goes to a "
                                                     "node with a free card of it")


class CreateVmSerializer(_CreateCommon):
    source = serializers.ChoiceField(["iso", "template"], help_text="iso: empty disk + CD-ROM; template: clone")
    iso = serializers.CharField(max_length=512, required=False, allow_blank=True, help_text="ISO volid, e.g. local:iso/debian.iso")
    template = serializers.IntegerField(min_value=100, max_value=999999999, required=False, allow_null=True, help_text="VMID of a VM template")
    clone = serializers.ChoiceField(["linked", "full"], required=False)
    name = serializers.CharField(max_length=128)
    ostype = serializers.ChoiceField([k for k, _ in VM_OSTYPES], required=False)
    cloudinit = serializers.BooleanField(required=False, allow_null=True, default=None,
                                         help_text="Add cloud-init settings (default: yes for templates)")
    ci_user = serializers.CharField(max_length=32, required=False, allow_blank=True)


class CreateCtSerializer(_CreateCommon):
    ostemplate = serializers.CharField(max_length=512, help_text="CT template volid, e.g. local:vztmpl/debian-12-standard.tar.zst")
    hostname = serializers.CharField(max_length=253)
    password = serializers.CharField(max_length=256, required=False, allow_blank=True, write_only=True,
                                     style={"input_type": "password"}, help_text="root password (or ssh_keys)")
    unprivileged = serializers.BooleanField(required=False, default=True)
    nesting = serializers.BooleanField(required=False)
    swap = serializers.IntegerField(required=False, help_text="MiB")


class _CreateApi(ApprovalAwareMixin, ActionAPIMixin, GenericAPIView):  # above a size: waits for approval
    what = ""

    def get_audit_target(self, obj, result):
        return result.target_repr if result is not None else self.what


def _create(service):
    def perform(view, obj, data):
        return service(user=view.request.user, data=data)

    return perform


class GuestCreateVmApi(_CreateApi):
    """Create a VM from an ISO image or by cloning a template. 400 with field errors when the
    request does not fit the inventory; 202 with the operation otherwise."""

    serializer_class = CreateVmSerializer
    what = "VM"
    post = operation_handler(serializer=CreateVmSerializer, audit="guests.guest_create", summary="Create a VM")(
        _create(guest_create_vm))


class GuestCreateCtApi(_CreateApi):
    """Create a container from a CT template (vztmpl). 400 with field errors, or 202 with the operation."""

    serializer_class = CreateCtSerializer
    what = "CT"
    post = operation_handler(serializer=CreateCtSerializer, audit="guests.guest_create",
                             summary="Create a container")(_create(guest_create_ct))


api_urlpatterns = [
    path("guests/create-vm/", GuestCreateVmApi.as_view(), name="guest-create-vm"),
    path("guests/create-ct/", GuestCreateCtApi.as_view(), name="guest-create-ct"),
]
