"""Snapshots of a guest: take (with RAM state for running VMs), list as a tree, roll back, delete.

Each action is an operation whose worker starts the Proxmox task, follows it, then re-reads that one
guest (config with its `parent` = "You are here", snapshot list) and pushes the tree to `guest-<pk>`,
so open pages update live. The periodic sync never reads snapshots.
"""

from __future__ import annotations

import re

from celery import shared_task
from django import forms
from django.contrib.auth.mixins import LoginRequiredMixin
from django.core.exceptions import PermissionDenied, ValidationError
from django.shortcuts import render
from django.db import transaction
from django.urls import path
from django.utils import timezone
from django.views import View
from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.permissions import IsAuthenticated
from rest_framework.response import Response
from rest_framework.views import APIView

from apps.core import api as _core_api  # noqa: F401  (loads DRF generics before our schema decorators run)
from apps.core.models import AuditResult
from apps.operations.live import progress_context
from apps.operations.models import Operation
from apps.operations.api.serializers import OperationSerializer
from apps.operations.clients import client_for
from apps.operations.services import OperationReporter, operation_create, run_operation

from apps.proxmox import ProxmoxError

from .. import services
from ..api.serializers import SnapshotSerializer
from ..choices import GuestType
from ..models import Guest, Snapshot
from .config import (
    accepted,
    audit,
    error_text,
    follow,
    guest_or_404,
    partial,
    push_snapshot_tree,
    refresh_after,
    require_operator,
    start_task,
)

# pve-configid (JSONSchema.pm parse_config_id), max 40 for snapshot names.
SNAPNAME_RE = re.compile(r"^[a-z][a-z0-9_-]+$", re.IGNORECASE)
RESERVED = {"current", "pending"}


def validate_snapname(name: str) -> str:
    name = (name or "").strip()
    if not name:
        raise ValidationError({"name": ["give the snapshot a name"]})
    if len(name) > 40:
        raise ValidationError({"name": ["may be at most 40 characters"]})
    if not SNAPNAME_RE.match(name):
        raise ValidationError({"name": [f"'{name}' is not a valid snapshot name: start with a letter, then letters, "
                                        "digits, _ or - (at least 2 characters)"]})
    if name.lower() in RESERVED:
        raise ValidationError({"name": [f"'{name}' is a reserved name in Proxmox"]})
    return name


def _existing(guest: Guest, name: str) -> Snapshot:
    snapshot = guest.snapshots.filter(name=name).first()
    if snapshot is None:
        raise ValidationError({"name": [f"{guest.kind} {guest} has no snapshot '{name}' (as last read)"]})
    return snapshot


def _queue(guest: Guest, user, *, kind: str, task: str, title: str, **kwargs) -> Operation:
    return operation_create(kind=kind, user=user, task_name=task, target=guest, cluster_id=guest.cluster_id,
                            title=title, kwargs={"guest_id": guest.pk, **kwargs})


def guest_snapshot_create(*, guest: Guest, user, name: str, description: str = "", vmstate: bool = False) -> Operation:
    """Queue operation `guest.snapshot` (task qmsnapshot/vzsnapshot). The name is checked like
    Proxmox's pve-configid (max 40) and against the guest's known snapshots; `vmstate` (save RAM)
    only for running VMs. Raises ValidationError (field map) or PermissionDenied; nothing queued then."""
    require_operator(user, guest)
    name = validate_snapname(name)
    if guest.snapshots.filter(name=name).exists():
        raise ValidationError({"name": [f"a snapshot named '{name}' already exists"]})
    if vmstate and guest.type != GuestType.QEMU:
        raise ValidationError({"vmstate": ["containers have no RAM state to save"]})
    if vmstate and not guest.is_running:
        raise ValidationError({"vmstate": ["the VM is not running, so there is no RAM state to save"]})
    if len(description or "") > 8192:
        raise ValidationError({"description": ["may be at most 8192 characters"]})
    return _queue(guest, user, kind="guest.snapshot", task="guests.snapshot_create",
                  title=f"Snapshot {name} of {guest.kind} {guest}", action="create", name=name,
                  params={"description": description or None, "vmstate": 1 if vmstate else None})


def guest_snapshot_rollback(*, guest: Guest, user, name: str) -> Operation:
    """Queue operation `guest.rollback`: the guest returns to snapshot `name` (a running VM with
    RAM state resumes running; otherwise it ends stopped, as in Proxmox)."""
    require_operator(user, guest)
    _existing(guest, name)
    return _queue(guest, user, kind="guest.rollback", task="guests.snapshot_rollback",
                  title=f"Roll back {guest.kind} {guest} to {name}", action="rollback", name=name, params={})


def guest_snapshot_delete(*, guest: Guest, user, name: str) -> Operation:
    """Queue operation `guest.snapshot_delete`; the snapshot's children are re-parented by Proxmox."""
    require_operator(user, guest)
    _existing(guest, name)
    return _queue(guest, user, kind="guest.snapshot_delete", task="guests.snapshot_delete",
                  title=f"Delete snapshot {name} of {guest.kind} {guest}", action="delete", name=name, params={})


_VERBS = {"create": "take a snapshot of", "rollback": "roll back", "delete": "delete a snapshot of"}


def run_snapshot(operation, reporter: OperationReporter, *, guest_id: int, action: str, name: str,
                 params: dict) -> dict:
    """Worker side: start the Proxmox task, follow it, re-read the guest and push its tree."""
    guest = Guest.objects.select_related("node", "cluster").get(pk=guest_id)
    client = client_for(guest.cluster_id)
    verb = _VERBS[action]
    base = f"{guest.api_path}/snapshot"
    try:
        if action == "create":
            upid = start_task(client, guest, verb, "POST", base, snapname=name, **params)
        elif action == "rollback":
            upid = start_task(client, guest, verb, "POST", f"{base}/{name}/rollback")
        else:
            upid = start_task(client, guest, verb, "DELETE", f"{base}/{name}")
        follow(operation, client, guest, verb, upid, reporter, progress_range=(0, 90))
        reporter.event("Re-reading the guest's snapshots from Proxmox", progress=95)
        refresh_after(guest, client, reporter)
        return {"snapshot": name}
    except Exception:
        # A failed task can still have changed the guest (lock, partial snapshot): show what is true now.
        refresh_after(guest, client, reporter)
        raise
    finally:
        client.close()


def _task(operation_id: str, **kwargs) -> None:
    run_operation(operation_id, lambda op, reporter: run_snapshot(op, reporter, **kwargs))


snapshot_create_task = shared_task(name="guests.snapshot_create")(_task)
snapshot_rollback_task = shared_task(name="guests.snapshot_rollback")(_task)
snapshot_delete_task = shared_task(name="guests.snapshot_delete")(_task)


@shared_task(name="guests.snapshots_refresh", ignore_result=True)
def snapshots_refresh_task(guest_id: int) -> None:
    """Targeted read of one guest for its open snapshot page, then the tree is pushed."""
    guest = Guest.objects.select_related("node", "cluster").filter(pk=guest_id).first()
    if guest is None or guest.node_id is None:
        return
    client = client_for(guest.cluster_id)
    try:
        services.guest_refresh(guest=guest, client=client)
    except ProxmoxError:
        pass  # saved on the row (details_error); the tree shows what we had
    finally:
        client.close()
    push_snapshot_tree(guest.pk)


def snapshots_refresh_if_stale(guest: Guest) -> bool:
    """Queue snapshots_refresh when the last read is older than services.DETAILS_INTERVAL."""
    from apps.nodes import presence

    age = (timezone.now() - guest.details_synced_at).total_seconds() if guest.details_synced_at else None
    if (age is not None and age < services.DETAILS_INTERVAL) or guest.node_id is None or \
            not presence.mark_queued("guest-snapshots", guest.pk, 10):
        return False
    transaction.on_commit(lambda: snapshots_refresh_task.delay(guest.pk))
    return True


# -- the tree -------------------------------------------------------------------------------------


def snapshot_tree(guest: Guest) -> list[dict]:
    """Snapshots in tree order (parents first, siblings by time) with their depth, plus the
    "You are here" row (the current state) under its parent: [{"snapshot"|None, "depth", "current"}]."""
    snapshots = list(guest.snapshots.all().order_by("snaptime", "name"))
    names = {s.name for s in snapshots}
    children: dict[str, list] = {}
    for s in snapshots:
        children.setdefault(s.parent if s.parent in names else "", []).append(s)
    here = (guest.config or {}).get("parent", "")
    here = here if here in names else ""
    rows: list[dict] = []

    def walk(parent: str, depth: int) -> None:
        for s in children.get(parent, []):
            rows.append({"snapshot": s, "depth": depth, "current": False})
            walk(s.name, depth + 1)
        if parent == here:
            rows.append({"snapshot": None, "depth": depth, "current": True})

    walk("", 0)
    return rows


def snapshot_tree_context(guest: Guest) -> dict:
    return {"guest": guest, "rows": snapshot_tree(guest), "current_parent": (guest.config or {}).get("parent", "")}


# -- form and views -------------------------------------------------------------------------------


class SnapshotForm(forms.Form):
    name = forms.CharField(max_length=40, help_text="Letters, digits, _ and -; starts with a letter.")
    description = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 2}))
    vmstate = forms.BooleanField(required=False, label="Include RAM (running VMs)")

    def __init__(self, *args, guest: Guest, **kwargs):
        super().__init__(*args, **kwargs)
        if guest.type != GuestType.QEMU:
            del self.fields["vmstate"]
        else:
            self.fields["vmstate"].disabled = not guest.is_running
            if not guest.is_running:
                self.fields["vmstate"].help_text = "The VM is stopped: only its disks are saved."


def _page_context(request, guest: Guest, form=None) -> dict:
    return {"guest": guest, "object": guest, "form": form or SnapshotForm(guest=guest),
            "live_groups": [f"cluster-{guest.cluster_id}", f"guest-{guest.pk}"], **snapshot_tree_context(guest)}


class GuestSnapshotsView(LoginRequiredMixin, View):
    """GET: the snapshot page (take form, live tree). POST: take a snapshot; answers the form
    (fresh, or with errors) and the progress panel out of band."""

    def get(self, request, pk):
        guest = guest_or_404(request, pk)
        snapshots_refresh_if_stale(guest)
        return render(request, "guests/snapshots/snapshots.html", _page_context(request, guest))

    def post(self, request, pk):
        guest = guest_or_404(request, pk)
        form = SnapshotForm(request.POST, guest=guest)
        context = {"guest": guest, "form": form}
        if form.is_valid():
            try:
                operation = guest_snapshot_create(guest=guest, user=request.user, **form.cleaned_data)
            except ValidationError as exc:
                for key, messages in exc.message_dict.items():
                    for message in messages:
                        form.add_error(key if key in form.fields else None, message)
            except PermissionDenied as exc:
                audit(request, "guests.snapshot_create", guest, result=AuditResult.DENIED)
                form.add_error(None, str(exc))
            else:
                audit(request, "guests.snapshot_create", guest, operation, name=form.cleaned_data["name"])
                context = {"guest": guest, "form": SnapshotForm(guest=guest), "operation_oob": True,
                           **progress_context(operation)}
        return partial(request, "guests/snapshots/take_form.html", context)


class GuestSnapshotActionView(LoginRequiredMixin, View):
    """POST /guests/<pk>/snapshots/<name>/<rollback|delete>/: queue it; answers the progress panel."""

    services = {"rollback": guest_snapshot_rollback, "delete": guest_snapshot_delete}

    def post(self, request, pk, name, action):
        guest = guest_or_404(request, pk)
        service = self.services[action]
        try:
            operation = service(guest=guest, user=request.user, name=name)
        except ValidationError as exc:
            return partial(request, "guests/partials/guest_action_error.html", {"error": error_text(exc)})
        except PermissionDenied as exc:
            audit(request, f"guests.snapshot_{action}", guest, result=AuditResult.DENIED)
            return partial(request, "guests/partials/guest_action_error.html", {"error": str(exc)})
        audit(request, f"guests.snapshot_{action}", guest, operation, name=name)
        return partial(request, "guests/config/operation.html", progress_context(operation))


class GuestSnapshotTreeView(LoginRequiredMixin, View):
    """GET: the tree alone (for a reconnecting page)."""

    def get(self, request, pk):
        guest = guest_or_404(request, pk)
        return partial(request, "guests/snapshots/tree.html", snapshot_tree_context(guest))


urlpatterns = [
    path("guests/<int:pk>/snapshots/", GuestSnapshotsView.as_view(), name="guest_snapshots"),
    path("guests/<int:pk>/snapshots/tree/", GuestSnapshotTreeView.as_view(), name="guest_snapshot_tree"),
    path("guests/<int:pk>/snapshots/<str:name>/rollback/", GuestSnapshotActionView.as_view(),
         {"action": "rollback"}, name="guest_snapshot_rollback"),
    path("guests/<int:pk>/snapshots/<str:name>/delete/", GuestSnapshotActionView.as_view(),
         {"action": "delete"}, name="guest_snapshot_delete"),
]


# -- API --------------------------------------------------------------------------------------------


class SnapshotCreateSerializer(serializers.Serializer):
    name = serializers.CharField(help_text="pve-configid: a letter, then letters, digits, _ or -; max 40")
    description = serializers.CharField(required=False, allow_blank=True, default="")
    vmstate = serializers.BooleanField(required=False, default=False, help_text="save RAM (running VMs)")


class GuestSnapshotsAPIView(APIView):
    """GET: the guest's snapshots (as last read) and `current_parent` ("You are here" hangs under it).
    POST: take one (202 with the operation)."""

    permission_classes = [IsAuthenticated]
    serializer_class = SnapshotCreateSerializer

    @extend_schema(responses={200: inline_serializer("GuestSnapshotTree", fields={
        "count": serializers.IntegerField(), "current_parent": serializers.CharField(),
        "results": SnapshotSerializer(many=True)})})
    def get(self, request, pk):
        guest = guest_or_404(request, pk)
        rows = guest.snapshots.all().order_by("snaptime", "name")
        return Response({"count": len(rows), "current_parent": (guest.config or {}).get("parent", ""),
                         "results": SnapshotSerializer(rows, many=True).data})

    @extend_schema(request=SnapshotCreateSerializer, responses={202: OperationSerializer})
    def post(self, request, pk):
        guest = guest_or_404(request, pk)
        body = SnapshotCreateSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        operation = guest_snapshot_create(guest=guest, user=request.user, **body.validated_data)
        audit(request, "guests.snapshot_create", guest, operation, name=body.validated_data["name"])
        return accepted(request, operation)


class GuestSnapshotAPIView(APIView):
    """DELETE: delete snapshot `name` (202 with the operation)."""

    permission_classes = [IsAuthenticated]

    @extend_schema(request=None, responses={202: OperationSerializer})
    def delete(self, request, pk, name):
        guest = guest_or_404(request, pk)
        operation = guest_snapshot_delete(guest=guest, user=request.user, name=name)
        audit(request, "guests.snapshot_delete", guest, operation, name=name)
        return accepted(request, operation)


class GuestSnapshotRollbackAPIView(APIView):
    """POST: roll the guest back to snapshot `name` (202 with the operation)."""

    permission_classes = [IsAuthenticated]

    @extend_schema(request=None, responses={202: OperationSerializer})
    def post(self, request, pk, name):
        guest = guest_or_404(request, pk)
        operation = guest_snapshot_rollback(guest=guest, user=request.user, name=name)
        audit(request, "guests.snapshot_rollback", guest, operation, name=name)
        return accepted(request, operation)


api_urlpatterns = [
    path("guests/<int:pk>/snapshots/", GuestSnapshotsAPIView.as_view(), name="guest-snapshots"),
    path("guests/<int:pk>/snapshots/<str:name>/", GuestSnapshotAPIView.as_view(), name="guest-snapshot"),
    path("guests/<int:pk>/snapshots/<str:name>/rollback/", GuestSnapshotRollbackAPIView.as_view(),
         name="guest-snapshot-rollback"),
]
