"""Clone any guest (full, or linked from a template), convert a guest to a template, delete a guest.

Clone: the new vmid is reserved (VmidReservation, via create.reserve_vmid) in the same transaction as
the operation, before Proxmox is called; the worker follows the qmclone/vzclone task (percent + ETA
from its log), then re-syncs the new guest so it shows at once, and releases the reservation.
Delete: refused up front while protection is on, while running, or while HA-managed without purge
(from the last read; Proxmox checks again and its refusal is shown in words + its message).
"""

from __future__ import annotations

import re

from celery import shared_task
from django import forms
from django.contrib.auth.mixins import LoginRequiredMixin
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.shortcuts import render
from django.urls import path
from django.views import View
from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.permissions import IsAuthenticated
from rest_framework.views import APIView

from apps.core import api as _core_api  # noqa: F401  (loads DRF generics before our schema decorators run)
from apps.core.models import AuditResult
from apps.operations.api.serializers import OperationSerializer
from apps.operations.clients import client_for
from apps.operations.live import progress_context
from apps.operations.models import Operation
from apps.operations.services import OperationReporter, operation_create, run_operation
from apps.proxmox import ProxmoxError

from .. import config as guest_config
from .. import services
from ..choices import GuestType
from ..models import Guest, VmidReservation
from .config import (
    ActionRefused,
    accepted,
    audit,
    error_text,
    follow,
    guest_or_404,
    partial,
    refresh_after,
    refused,
    require_operator,
    start_task,
)

DNS_NAME_RE = re.compile(r"^(?=.{1,63}$)[a-zA-Z0-9]([a-zA-Z0-9-]*[a-zA-Z0-9])?(\.[a-zA-Z0-9]([a-zA-Z0-9-]*[a-zA-Z0-9])?)*$")
POOL_RE = re.compile(r"^[A-Za-z0-9_\-]+$")


def _storages(guest: Guest, node: str) -> dict[str, bool]:
    """Storage ids usable for this guest type on `node` -> shared?"""
    from apps.storage.models import Storage

    content = "images" if guest.type == GuestType.QEMU else "rootdir"
    return dict(Storage.objects.filter(cluster_id=guest.cluster_id, nodes__contains=[node],
                                       content__contains=[content]).values_list("storage", "shared"))


def _disk_storages(guest: Guest) -> set[str]:
    return {d["volume"].split(":", 1)[0] for d in guest_config.disks(guest.config or {}, guest.type)
            if ":" in d["volume"] and d["media"] != "cdrom"}


def _nodes(guest: Guest) -> list[str]:
    from apps.nodes.models import Node

    return list(Node.objects.filter(cluster_id=guest.cluster_id).order_by("name").values_list("name", flat=True))


# -- clone ----------------------------------------------------------------------------------------


def plan_clone(guest: Guest, *, name: str = "", target: str = "", storage: str = "", pool: str = "",
               full: bool | None = None, newid: int | None = None, description: str = "") -> dict:
    """Check the clone request against what we know; returns Proxmox's clone parameters (without
    newid). Raises ValidationError with every field's reason."""
    errors: dict[str, list[str]] = {}

    def err(key, message):
        errors.setdefault(key, []).append(message)

    name = (name or "").strip()
    if name and not DNS_NAME_RE.match(name):
        err("name", "a DNS name: letters, digits and -, dot-separated parts, at most 63 characters")
    if full is None:
        full = not guest.template  # Proxmox's default: linked from templates, full otherwise
    if not full and not guest.template:
        err("full", "only templates can be cloned linked; a normal guest is always copied in full")
    target = (target or "").strip() or guest.node.name
    if target not in _nodes(guest):
        err("target", f"no node '{target}' in cluster {guest.cluster}")
    storage = (storage or "").strip()
    if storage and not full:
        err("storage", "a linked clone stays on the template's storage; leave it empty or clone in full")
    usable = _storages(guest, target)
    if storage and storage not in usable:
        err("storage", f"'{storage}' cannot hold {'VM disks' if guest.type == GuestType.QEMU else 'container volumes'} "
            f"on {target}; one of: {', '.join(sorted(usable)) or 'none'}")
    if target != guest.node.name and "target" not in errors:
        local = [s for s in _disk_storages(guest) if not _storages(guest, guest.node.name).get(s, True)]
        if local and not (storage and usable.get(storage)):
            err("target", f"its disks are on local storage ({', '.join(sorted(local))}); clone on {guest.node.name} "
                "or give a shared target storage")
    pool = (pool or "").strip()
    if pool and not POOL_RE.match(pool):
        err("pool", "a pool name: letters, digits, _ and -")
    if newid is not None:
        if not 100 <= int(newid) <= 999_999_999:
            err("newid", "a VMID is between 100 and 999999999")
        elif Guest.objects.filter(cluster_id=guest.cluster_id, vmid=newid).exists() or \
                VmidReservation.objects.filter(cluster_id=guest.cluster_id, vmid=newid).exists():
            err("newid", f"VMID {newid} is already used or reserved")
    if errors:
        raise ValidationError(errors)
    params = {"full": 1 if full else 0, "target": target if target != guest.node.name else None,
              "storage": storage or None, "pool": pool or None, "description": description or None}
    params["name" if guest.type == GuestType.QEMU else "hostname"] = name or None
    return params


def guest_clone(*, guest: Guest, user, name: str = "", target: str = "", storage: str = "", pool: str = "",
                full: bool | None = None, newid: int | None = None, description: str = "") -> Operation:
    """Queue operation `guest.clone`. The new vmid (given, or Proxmox's next free one) is reserved
    with the operation in one transaction, so two clones never take the same id and a retried
    worker reuses it. Raises ValidationError (field map) or PermissionDenied; nothing queued then."""
    from .create import reserve_vmid

    require_operator(user, guest)
    params = plan_clone(guest, name=name, target=target, storage=storage, pool=pool, full=full, newid=newid,
                        description=description)
    with transaction.atomic():
        if newid is not None:
            reservation = VmidReservation.objects.create(cluster_id=guest.cluster_id, vmid=newid, purpose="clone")
        else:
            reservation = reserve_vmid(cluster=guest.cluster, purpose="clone")
        how = "full" if params["full"] else "linked"
        label = name or f"Copy of {guest.name or guest.vmid}"
        operation = operation_create(
            kind="guest.clone", user=user, task_name="guests.guest_clone", target=guest, cluster_id=guest.cluster_id,
            title=f"Clone {guest.kind} {guest} to {reservation.vmid} ({label}, {how})",
            kwargs={"guest_id": guest.pk, "newid": reservation.vmid, "params": params})
        VmidReservation.objects.filter(pk=reservation.pk).update(operation_id=operation.pk)
    return operation


def run_clone(operation, reporter: OperationReporter, *, guest_id: int, newid: int, params: dict) -> dict:
    """Worker side: POST clone (once: a retry re-follows the recorded task), follow it with its
    percent, then re-sync the new guest; the reservation goes either way."""
    from .create import sync_guest

    guest = Guest.objects.select_related("node", "cluster").get(pk=guest_id)
    client = client_for(guest.cluster_id)
    try:
        if operation.current_upid and f":{'qmclone' if guest.type == GuestType.QEMU else 'vzclone'}:" \
                in operation.current_upid:
            upid = operation.current_upid
            reporter.event("Retry: following the clone task started before")
        else:
            upid = start_task(client, guest, "clone", "POST", f"{guest.api_path}/clone", newid=newid, **params)
        follow(operation, client, guest, "clone", upid, reporter, progress_range=(0, 90))
        reporter.event(f"Reading the new {guest.kind} {newid} from Proxmox", progress=95)
        new = sync_guest(client, guest.cluster_id, newid)
        refresh_after(guest, client, reporter)
        return {"vmid": newid, "guest": new.pk if new else None}
    finally:
        VmidReservation.objects.filter(operation_id=operation.pk).delete()
        client.close()


@shared_task(name="guests.guest_clone")
def guest_clone_task(operation_id: str, **kwargs) -> None:
    run_operation(operation_id, lambda op, reporter: run_clone(op, reporter, **kwargs))


# -- template -------------------------------------------------------------------------------------


def guest_template(*, guest: Guest, user) -> Operation:
    """Queue operation `guest.template` (qmtemplate task; containers convert at once). Refused up
    front (ValidationError) when it already is a template, runs, or has snapshots."""
    require_operator(user, guest)
    if guest.template:
        raise ValidationError({"__all__": [f"{guest.kind} {guest} already is a template"]})
    if guest.is_running:
        raise ValidationError({"__all__": [f"{guest.kind} {guest} is running; shut it down first"]})
    if guest.snapshots.exists():
        raise ValidationError({"__all__": [f"{guest.kind} {guest} has snapshots; Proxmox cannot make a template "
                                           "of it until they are deleted"]})
    return operation_create(kind="guest.template", user=user, task_name="guests.guest_template", target=guest,
                            cluster_id=guest.cluster_id, title=f"Convert {guest.kind} {guest} to a template",
                            kwargs={"guest_id": guest.pk})


def run_template(operation, reporter: OperationReporter, *, guest_id: int) -> dict:
    guest = Guest.objects.select_related("node", "cluster").get(pk=guest_id)
    client = client_for(guest.cluster_id)
    try:
        upid = start_task(client, guest, "convert to a template", "POST", f"{guest.api_path}/template")
        if upid:  # qemu: a task; lxc: done synchronously (null)
            follow(operation, client, guest, "convert to a template", upid, reporter, progress_range=(0, 90))
        Guest.objects.filter(pk=guest.pk).update(template=True)
        guest.template = True
        refresh_after(guest, client, reporter)
        return {"template": True}
    finally:
        client.close()


@shared_task(name="guests.guest_template")
def guest_template_task(operation_id: str, **kwargs) -> None:
    run_operation(operation_id, lambda op, reporter: run_template(op, reporter, **kwargs))


# -- delete ---------------------------------------------------------------------------------------


def guest_delete(*, guest: Guest, user, purge: bool = False, destroy_unreferenced_disks: bool = False) -> Operation:
    """Queue operation `guest.delete` (qmdestroy/vzdestroy). `purge` also removes the guest from
    backup jobs, replication and HA. Raises ActionRefused (with the reason) while protection is on,
    while it runs, or when HA manages it and `purge` is off; PermissionDenied; nothing queued then."""
    require_operator(user, guest)
    if str((guest.config or {}).get("protection", "0")) == "1":
        raise ActionRefused(f"Cannot delete {guest.kind} {guest}: protection is on. Turn it off in the guest's "
                            "settings first.")
    if guest.is_running:
        raise ActionRefused(f"Cannot delete {guest.kind} {guest}: it is running. Stop it first.")
    if guest.hastate and not purge:
        raise ActionRefused(f"Cannot delete {guest.kind} {guest}: it is managed by HA. Ask to purge it from HA "
                            "and backup jobs too.")
    return operation_create(kind="guest.delete", user=user, task_name="guests.guest_delete", target=guest,
                            cluster_id=guest.cluster_id, title=f"Delete {guest.kind} {guest}",
                            kwargs={"guest_id": guest.pk, "purge": bool(purge),
                                    "unreferenced": bool(destroy_unreferenced_disks)})


def run_delete(operation, reporter: OperationReporter, *, guest_id: int, purge: bool, unreferenced: bool) -> dict:
    guest = Guest.objects.select_related("node", "cluster").get(pk=guest_id)
    client = client_for(guest.cluster_id)
    try:
        upid = start_task(client, guest, "delete", "DELETE", guest.api_path, purge=1 if purge else None,
                          **{"destroy-unreferenced-disks": 1 if unreferenced else None})
        follow(operation, client, guest, "delete", upid, reporter, progress_range=(0, 95))
    except ProxmoxError:
        refresh_after(guest, client, reporter)  # show its true state (lock, protection) on the page
        raise
    finally:
        client.close()
    vmid, cluster_id = guest.vmid, guest.cluster_id
    Guest.objects.filter(pk=guest.pk).delete()
    services.push_guests(cluster_id, [], gone=[guest])
    return {"deleted": vmid, "purged": purge}


@shared_task(name="guests.guest_delete")
def guest_delete_task(operation_id: str, **kwargs) -> None:
    run_operation(operation_id, lambda op, reporter: run_delete(op, reporter, **kwargs))


# -- forms and views ------------------------------------------------------------------------------


class CloneForm(forms.Form):
    name = forms.CharField(required=False, help_text="Empty: 'Copy-of-…' as Proxmox names it.")
    target = forms.ChoiceField(label="Target node")
    storage = forms.ChoiceField(label="Target storage", required=False)
    pool = forms.CharField(required=False)
    mode = forms.ChoiceField(label="Clone mode", choices=[("full", "Full copy"), ("linked", "Linked (templates only)")])
    newid = forms.IntegerField(label="VMID", required=False, help_text="Empty: the next free one, reserved for you.")

    def __init__(self, *args, guest: Guest, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["target"].choices = [(n, n) for n in _nodes(guest)]
        self.fields["storage"].choices = [("", "same as source")] + [
            (s, s) for s in sorted({s for n in _nodes(guest) for s in _storages(guest, n)})]
        if not self.is_bound:
            self.initial = {"target": guest.node.name if guest.node_id else "", "pool": guest.pool,
                            "mode": "linked" if guest.template else "full"}

    def service_kwargs(self) -> dict:
        d = self.cleaned_data
        return {"name": d["name"], "target": d["target"], "storage": d["storage"], "pool": d["pool"],
                "full": d["mode"] == "full", "newid": d["newid"]}


class DeleteForm(forms.Form):
    confirm = forms.CharField(label="Type the VMID to confirm")
    purge = forms.BooleanField(required=False, label="Also remove it from HA, backup jobs and replication (purge)")
    destroy_unreferenced_disks = forms.BooleanField(required=False, label="Also destroy disks not in its config")

    def __init__(self, *args, guest: Guest, **kwargs):
        super().__init__(*args, **kwargs)
        self.guest = guest

    def clean_confirm(self):
        value = self.cleaned_data["confirm"].strip()
        if value != str(self.guest.vmid):
            raise ValidationError(f"type {self.guest.vmid} to confirm the deletion")
        return value


def _context(guest: Guest, **extra) -> dict:
    return {"guest": guest, "object": guest, "live_groups": [f"cluster-{guest.cluster_id}", f"guest-{guest.pk}"],
            "clone_form": extra.pop("clone_form", None) or CloneForm(guest=guest),
            "delete_form": extra.pop("delete_form", None) or DeleteForm(guest=guest),
            "protected": str((guest.config or {}).get("protection", "0")) == "1", **extra}


def _add_errors(form, exc: ValidationError) -> None:
    mapping = {"full": "mode"}
    for key, messages in exc.message_dict.items():
        name = mapping.get(key, key)
        for message in messages:
            form.add_error(name if name in form.fields else None, message)


class GuestClonePageView(LoginRequiredMixin, View):
    def get(self, request, pk):
        guest = guest_or_404(request, pk)
        return render(request, "guests/clone/clone.html", _context(guest))


class GuestCloneView(LoginRequiredMixin, View):
    """POST: clone; answers the form (errors) or the form + progress panel (oob)."""

    def post(self, request, pk):
        guest = guest_or_404(request, pk)
        form = CloneForm(request.POST, guest=guest)
        extra = {}
        if form.is_valid():
            try:
                operation = guest_clone(guest=guest, user=request.user, **form.service_kwargs())
            except ValidationError as exc:
                _add_errors(form, exc)
            except PermissionDenied as exc:
                audit(request, "guests.guest_clone", guest, result=AuditResult.DENIED)
                form.add_error(None, str(exc))
            else:
                audit(request, "guests.guest_clone", guest, operation)
                extra = {"operation_oob": True, **progress_context(operation)}
        return partial(request, "guests/clone/clone_form.html", {"guest": guest, "clone_form": form, **extra})


class GuestTemplateView(LoginRequiredMixin, View):
    def post(self, request, pk):
        guest = guest_or_404(request, pk)
        try:
            operation = guest_template(guest=guest, user=request.user)
        except (ValidationError, PermissionDenied) as exc:
            text = error_text(exc) if isinstance(exc, ValidationError) else str(exc)
            return partial(request, "guests/partials/guest_action_error.html", {"error": text})
        audit(request, "guests.guest_template", guest, operation)
        return partial(request, "guests/config/operation.html", progress_context(operation))


class GuestDeleteView(LoginRequiredMixin, View):
    def post(self, request, pk):
        guest = guest_or_404(request, pk)
        form = DeleteForm(request.POST, guest=guest)
        extra = {}
        if form.is_valid():
            try:
                operation = guest_delete(guest=guest, user=request.user, purge=form.cleaned_data["purge"],
                                         destroy_unreferenced_disks=form.cleaned_data["destroy_unreferenced_disks"])
            except ActionRefused as exc:
                audit(request, "guests.guest_delete", guest, result=AuditResult.FAILURE, error=exc.message)
                extra["refused"] = exc.message
            except PermissionDenied as exc:
                audit(request, "guests.guest_delete", guest, result=AuditResult.DENIED)
                extra["refused"] = str(exc)
            else:
                audit(request, "guests.guest_delete", guest, operation, purge=form.cleaned_data["purge"])
                extra = {"operation_oob": True, **progress_context(operation)}
        return partial(request, "guests/clone/delete_form.html", {
            "guest": guest, "delete_form": form, **extra,
            "protected": str((guest.config or {}).get("protection", "0")) == "1"})


urlpatterns = [
    path("guests/<int:pk>/clone/", GuestClonePageView.as_view(), name="guest_clone"),
    path("guests/<int:pk>/clone/run/", GuestCloneView.as_view(), name="guest_clone_run"),
    path("guests/<int:pk>/template/", GuestTemplateView.as_view(), name="guest_template"),
    path("guests/<int:pk>/delete/", GuestDeleteView.as_view(), name="guest_delete"),
]


# -- API ------------------------------------------------------------------------------------------


class CloneSerializer(serializers.Serializer):
    name = serializers.CharField(required=False, allow_blank=True, default="")
    target = serializers.CharField(required=False, allow_blank=True, default="", help_text="node (default: same)")
    storage = serializers.CharField(required=False, allow_blank=True, default="")
    pool = serializers.CharField(required=False, allow_blank=True, default="")
    full = serializers.BooleanField(required=False, allow_null=True, default=None,
                                    help_text="default: linked for templates, full otherwise")
    newid = serializers.IntegerField(required=False, allow_null=True, default=None)
    description = serializers.CharField(required=False, allow_blank=True, default="")


class DeleteSerializer(serializers.Serializer):
    purge = serializers.BooleanField(required=False, default=False)
    destroy_unreferenced_disks = serializers.BooleanField(required=False, default=False)


class GuestCloneAPIView(APIView):
    """POST: clone the guest (202 with the operation; the result names the new vmid)."""

    permission_classes = [IsAuthenticated]
    serializer_class = CloneSerializer

    @extend_schema(request=CloneSerializer, responses={202: OperationSerializer})
    def post(self, request, pk):
        guest = guest_or_404(request, pk)
        body = CloneSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        operation = guest_clone(guest=guest, user=request.user, **body.validated_data)
        audit(request, "guests.guest_clone", guest, operation)
        return accepted(request, operation)


class GuestTemplateAPIView(APIView):
    """POST: convert the guest to a template (202 with the operation)."""

    permission_classes = [IsAuthenticated]

    @extend_schema(request=None, responses={202: OperationSerializer})
    def post(self, request, pk):
        guest = guest_or_404(request, pk)
        operation = guest_template(guest=guest, user=request.user)
        audit(request, "guests.guest_template", guest, operation)
        return accepted(request, operation)


def delete_response(request, guest: Guest, data) -> object:
    body = DeleteSerializer(data=data)
    body.is_valid(raise_exception=True)
    try:
        operation = guest_delete(guest=guest, user=request.user, **body.validated_data)
    except ActionRefused as exc:
        audit(request, "guests.guest_delete", guest, result=AuditResult.FAILURE, error=exc.message)
        return refused(exc)
    audit(request, "guests.guest_delete", guest, operation, purge=body.validated_data["purge"])
    return accepted(request, operation)


class GuestDeleteAPIView(APIView):
    """POST: delete the guest (202 with the operation; 409 with the reason while protected, running,
    or HA-managed without purge). Same as DELETE /api/v1/guests/<id>/?purge=1."""

    permission_classes = [IsAuthenticated]
    serializer_class = DeleteSerializer

    @extend_schema(request=DeleteSerializer, responses={202: OperationSerializer})
    def post(self, request, pk):
        return delete_response(request, guest_or_404(request, pk), request.data)


api_urlpatterns = [
    path("guests/<int:pk>/clone/", GuestCloneAPIView.as_view(), name="guest-clone"),
    path("guests/<int:pk>/template/", GuestTemplateAPIView.as_view(), name="guest-template"),
    path("guests/<int:pk>/delete/", GuestDeleteAPIView.as_view(), name="guest-delete"),
]
