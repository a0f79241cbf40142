"""Clone, convert to template, delete: each checks up front and queues its operation."""

from __future__ import annotations

import uuid

from django.core.exceptions import ValidationError
from django.db import transaction

from apps.approvals import services as approvals
from apps.operations.models import Operation
from apps.operations.services import operation_create
from apps.permissions.policy import placement_pool, pool_tenant

from ... import quotas
from ...models import Guest, VmidReservation
from ..common import ActionRefused, require_allowed
from .validation import plan_clone


def guest_clone(*, guest: Guest, user, name: str = "", target: str = "", storage: str = "", pool: str = "",
                full: bool | None = None, newid: int | None = None, description: str = "") -> Operation:
    """Queue operation `guest.clone`. The new vmid (given, or Proxmox's next free one) is reserved
    with the operation in one transaction, so two clones never take the same id and a retried
    worker reuses it. Raises ValidationError (field map) or PermissionDenied; nothing queued then.
    Above the tenant's approval size it returns an ApprovalRequest instead (holding vmid and quota)."""
    from ..create.services import proxmox_next_vmid, reserve_vmid

    require_allowed(user, guest, "guest.clone")
    pool = placement_pool(user, guest.cluster_id, pool)  # a tenant's copies go in its pool
    params = plan_clone(guest, name=name, target=target, storage=storage, pool=pool, full=full, newid=newid,
                        description=description)
    # The copy is charged to the tenant whose pool it lands in (none: an operator's own); above the
    # tenant's approval size it waits for an operator, holding its vmid and quota meanwhile.
    tenant, amounts = pool_tenant(guest.cluster_id, pool), quotas.copy_amounts(guest)
    above = approvals.approval_needed(user=user, tenant=tenant, amounts=amounts)
    start = proxmox_next_vmid(cluster=guest.cluster) if newid is None else None  # outside the transaction
    with transaction.atomic():
        held_for = uuid.uuid4() if above else None
        if newid is not None:
            reservation = VmidReservation.objects.create(cluster_id=guest.cluster_id, vmid=newid, purpose="clone",
                                                         operation_id=held_for)
        else:
            reservation = reserve_vmid(cluster=guest.cluster, start=start, purpose="clone", operation_id=held_for)
        how = "full" if params["full"] else "linked"
        label = name or f"Copy of {guest.name or guest.vmid}"
        title = f"Clone {guest.kind} {guest} to {reservation.vmid} ({label}, {how})"
        kwargs = {"guest_id": guest.pk, "newid": reservation.vmid, "params": params}
        if above:
            return approvals.approval_request(user=user, tenant=tenant, kind="guest.clone", title=title,
                                              payload={"kwargs": kwargs}, amounts=amounts, above=above,
                                              request_id=held_for)
        operation = _clone_operation(user=user, guest=guest, title=title, kwargs=kwargs)
        VmidReservation.objects.filter(pk=reservation.pk).update(operation_id=operation.pk)
        quotas.reserve(operation, amounts, tenant=tenant)
    return operation


def _clone_operation(*, user, guest: Guest, title: str, kwargs: dict) -> Operation:
    return operation_create(kind="guest.clone", user=user, task_name="guests.guest_clone", target=guest,
                            cluster_id=guest.cluster_id, title=title, kwargs=kwargs)


def _start_approved(approval) -> Operation:
    """An operator approved a clone: queue it as the requester's, on the vmid held since the request."""
    kwargs = approval.payload["kwargs"]
    guest = Guest.objects.filter(pk=kwargs["guest_id"]).first()
    if guest is None:
        raise ValidationError({"guest": ["the guest to clone is gone; decline the request"]})
    operation = _clone_operation(user=approval.created_by, guest=guest, title=approval.title, kwargs=kwargs)
    VmidReservation.objects.filter(operation_id=approval.pk).update(operation_id=operation.pk)
    return operation


def register_approvals() -> None:
    from ..create.services import _release_declined

    # Declined or withdrawn: the vmid held for it goes, as for a create.
    approvals.register_kind("guest.clone", start=_start_approved, release=_release_declined)


def guest_template(*, guest: Guest, user) -> Operation:
    """Queue operation `guest.template` (qmtemplate task; containers convert at once). Refused up
    front (ValidationError) when it already is a template, runs, or has snapshots."""
    require_allowed(user, guest, "guest.template")
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
    require_allowed(user, guest, "guest.delete")
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
