"""Snapshot services: name checks, then take / roll back / delete as operations."""

from __future__ import annotations

import re

from django.core.exceptions import ValidationError
from django.db import transaction

from apps.operations.models import Operation
from apps.operations.services import operation_create

from ... import quotas
from ...choices import GuestType
from ...models import Guest, Snapshot
from ..common import require_allowed


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
    require_allowed(user, guest, "guest.snapshot")
    name = validate_snapname(name)
    if guest.snapshots.filter(name=name).exists():
        raise ValidationError({"name": [f"a snapshot named '{name}' already exists"]})
    if vmstate and guest.type != GuestType.QEMU:
        raise ValidationError({"vmstate": ["containers have no RAM state to save"]})
    if vmstate and not guest.is_running:
        raise ValidationError({"vmstate": ["the VM is not running, so there is no RAM state to save"]})
    if len(description or "") > 8192:
        raise ValidationError({"description": ["may be at most 8192 characters"]})
    with transaction.atomic():
        operation = _queue(guest, user, kind="guest.snapshot", task="guests.snapshot_create",
                           title=f"Snapshot {name} of {guest.kind} {guest}", action="create", name=name,
                           params={"description": description or None, "vmstate": 1 if vmstate else None})
        quotas.reserve(operation, {"snapshots_per_guest": 1}, subject=quotas.subject(guest),
                       fields={"snapshots_per_guest": "name"})
    return operation


def guest_snapshot_rollback(*, guest: Guest, user, name: str) -> Operation:
    """Queue operation `guest.rollback`: the guest returns to snapshot `name` (a running VM with
    RAM state resumes running; otherwise it ends stopped, as in Proxmox)."""
    require_allowed(user, guest, "guest.snapshot")
    _existing(guest, name)
    return _queue(guest, user, kind="guest.rollback", task="guests.snapshot_rollback",
                  title=f"Roll back {guest.kind} {guest} to {name}", action="rollback", name=name, params={})


def guest_snapshot_delete(*, guest: Guest, user, name: str) -> Operation:
    """Queue operation `guest.snapshot_delete`; the snapshot's children are re-parented by Proxmox."""
    require_allowed(user, guest, "guest.snapshot")
    _existing(guest, name)
    return _queue(guest, user, kind="guest.snapshot_delete", task="guests.snapshot_delete",
                  title=f"Delete snapshot {name} of {guest.kind} {guest}", action="delete", name=name, params={})
