"""Back up now, restore (over the guest or as a new one) and delete a backup: each checked, then queued
as an Operation; the restore's new vmid is reserved with it and released when it ends."""

from __future__ import annotations

from django.core.exceptions import ValidationError
from django.db import transaction
from django.dispatch import receiver

from apps.operations.models import Operation
from apps.operations.services import operation_create
from apps.operations.signals import operation_finished
from apps.permissions.policy import check, placement_pool, pool_tenant
from apps.storage.models import StorageContent

from ... import quotas
from ...models import Guest, VmidReservation
from ..backup_jobs.validation import COMPRESSIONS, MODES
from ..create.services import proxmox_next_vmid, reserve_vmid
from .validation import _archive_type, _disk_storages, _field, backup_storages


def guest_backup(*, guest: Guest, user, storage: str, mode: str = "snapshot", compress: str = "zstd",
                 notes: str = "", protected: bool = False) -> Operation:
    """Queue a backup of `guest` to backup storage `storage` (kind `guest.backup`).

    Validated before anything reaches Proxmox: operator, known node, a storage holding backups
    reachable from the guest's node, mode and compression from PVE's lists. Raises
    PermissionDenied or ValidationError (field map); nothing is queued then."""
    check(user, "guest.backup", guest)
    if guest.node_id is None:
        raise _field("node", f"the node of {guest} is not known yet; wait for the next sync")
    errors: dict[str, list[str]] = {}
    names = sorted({s.storage for s in backup_storages(guest=guest)})
    if storage not in names:
        errors["storage"] = [f"'{storage}' is not a backup storage reachable from {guest.node.name}; "
                             f"choose one of: {', '.join(names) or 'none configured'}"]
    if mode not in dict(MODES):
        errors["mode"] = [f"must be one of {', '.join(dict(MODES))}"]
    if compress not in dict(COMPRESSIONS):
        errors["compress"] = [f"must be one of {', '.join(dict(COMPRESSIONS))}"]
    if len(notes) > 1024:
        errors["notes"] = ["at most 1024 characters"]
    if errors:
        raise ValidationError(errors)
    with transaction.atomic():
        operation = operation_create(
            kind="guest.backup", user=user, task_name="guests.guest_backup", target=guest,
            cluster_id=guest.cluster_id,
            kwargs={"guest_id": guest.pk, "storage": storage, "mode": mode, "compress": compress, "notes": notes,
                    "protected": bool(protected)},
            title=f"Back up {guest.kind} {guest} to {storage}")
        quotas.reserve(operation, {"backups": 1})
    return operation


def guest_restore(*, guest: Guest, user, backup: StorageContent, target: str = "new", storage: str = "",
                  start: bool = False) -> Operation:
    """Queue a restore of `backup` (kind `guest.restore`): over `guest` itself (`target="same"`,
    Proxmox's force=1; the guest must be stopped) or as a new guest (`target="new"`, unique MACs)
    whose vmid is reserved now, before Proxmox is called, and released when the operation ends.

    Raises PermissionDenied or ValidationError (field map; `cluster` when Proxmox cannot be
    asked for a free vmid); nothing is queued then."""
    check(user, "guest.restore", guest)
    check(user, "guest.restore", backup)  # a backup the user may see (their tenant's guest's)
    if guest.node_id is None:
        raise _field("node", f"the node of {guest} is not known yet; wait for the next sync")
    errors: dict[str, list[str]] = {}
    if backup.content != "backup" or backup.storage.cluster_id != guest.cluster_id or backup.vmid != guest.vmid:
        errors["backup"] = [f"{backup.volid} is not a backup of {guest.kind} {guest}"]
    elif _archive_type(backup.volid) not in (None, guest.type):
        errors["backup"] = [f"{backup.filename} is a {'VM' if guest.type == 'lxc' else 'container'} backup"]
    if target not in ("same", "new"):
        errors["target"] = ["must be 'same' (overwrite this guest) or 'new' (a new guest)"]
    elif target == "same" and guest.is_running:
        errors["target"] = [f"{guest.kind} {guest} is running; shut it down before restoring over it"]
    node = backup.storage.node if backup.storage.node_id else guest.node
    if backup.storage.node_id is None and node.name not in backup.storage.nodes:
        errors["backup"] = [f"storage {backup.storage.storage} is not available on {node.name}"]
    if storage:
        names = sorted({s.storage for s in _disk_storages(guest)})
        if storage not in names:
            errors["storage"] = [f"'{storage}' cannot hold {'VM disks' if guest.type == 'qemu' else 'CT volumes'} "
                                 f"on {node.name}; choose one of: {', '.join(names)}"]
    if errors:
        raise ValidationError(errors)
    kwargs = {"guest_id": guest.pk, "volid": backup.volid, "node": node.name, "target": target,
              "storage": storage or None, "start": bool(start), "storage_id": backup.storage_id}
    if target == "new":
        kwargs["pool"] = placement_pool(user, guest.cluster_id, guest.pool if guest.tenant_id else "") or None
    start = proxmox_next_vmid(cluster=guest.cluster) if target == "new" else None  # outside the transaction
    with transaction.atomic():
        if target == "new":
            reservation = reserve_vmid(cluster=guest.cluster, start=start, purpose="restore")
            kwargs["vmid"] = reservation.vmid
            title = f"Restore {backup.filename} as new {guest.kind} {reservation.vmid}"
        else:
            kwargs["vmid"] = guest.vmid
            title = f"Restore {guest.kind} {guest} from {backup.filename}"
        operation = operation_create(kind="guest.restore", user=user, task_name="guests.guest_restore", target=guest,
                                     cluster_id=guest.cluster_id, kwargs=kwargs, title=title)
        if target == "new":
            VmidReservation.objects.filter(pk=reservation.pk).update(operation_id=operation.pk)
            quotas.reserve(operation, quotas.copy_amounts(guest),
                           tenant=pool_tenant(guest.cluster_id, kwargs["pool"] or ""))
    return operation


@receiver(operation_finished, dispatch_uid="guests.backups.release_vmid")
def _release_vmid(sender, operation, **kwargs) -> None:
    """A finished restore, whatever the outcome, holds its vmid no longer: Proxmox has the guest or nothing."""
    if operation.kind == "guest.restore":
        VmidReservation.objects.filter(operation_id=operation.pk).delete()


def backup_delete(*, backup: StorageContent, user, guest: Guest | None = None) -> Operation:
    """Queue the deletion of backup volume `backup` (kind `backup.delete`). Protected backups
    are refused (ValidationError on `backup`), as Proxmox would refuse them."""
    check(user, "guest.backup", backup)
    if backup.content != "backup":
        raise _field("backup", f"{backup.volid} is not a backup")
    if backup.protected:
        raise _field("backup", f"{backup.filename} is protected; remove its protection first")
    if backup.storage.node_name is None:
        raise _field("backup", f"no node reports storage {backup.storage.storage}")
    return operation_create(kind="backup.delete", user=user, task_name="guests.backup_delete",
                            target=guest or ("storage.storagecontent", backup.pk, backup.filename),
                            cluster_id=backup.storage.cluster_id,
                            kwargs={"storage_id": backup.storage_id, "volid": backup.volid},
                            title=f"Delete backup {backup.filename}")
