"""Clone, convert to template, delete: each checks up front and queues its operation."""

from __future__ import annotations

from django.core.exceptions import ValidationError
from django.db import transaction

from apps.operations.models import Operation
from apps.operations.services import operation_create

from ...models import Guest, VmidReservation
from ..common import ActionRefused, require_operator
from .validation import plan_clone


def guest_clone(*, guest: Guest, user, name: str = "", target: str = "", storage: str = "", pool: str = "",
                full: bool | None = None, newid: int | None = None, description: str = "") -> Operation:
    """Queue operation `guest.clone`. The new vmid (given, or Proxmox's next free one) is reserved
    with the operation in one transaction, so two clones never take the same id and a retried
    worker reuses it. Raises ValidationError (field map) or PermissionDenied; nothing queued then."""
    from ..create import reserve_vmid

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
