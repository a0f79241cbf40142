"""Create services: capacity hook, vmid reservation and the operation, in one transaction."""

from __future__ import annotations

import uuid

from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction

from apps.operations.clients import client_for
from apps.operations.models import Operation
from apps.operations.services import operation_create
from apps.permissions.policy import check, placement_pool, pool_tenant
from apps.proxmox import ProxmoxError, borrowed
from apps.proxmox import cluster as pve_cluster

from ...models import Guest, VmidReservation
from . import extensions
from .plans import plan_ct, plan_vm



def reserve_capacity(*, operation, cores: int, memory_mib: int, disk_gib: int, guests: int = 1) -> None:
    """Tenant quota hook: reserve the guest's vCPUs, memory, disk (and one guest) for `operation`
    inside the caller's transaction (apps.guests.quotas: tenant row lock), raising a field-map
    ValidationError (cores / memory / disk_size / guests) when over quota. Operators' guests: nothing."""
    from ...quotas import reserve

    reserve(operation, {"vcpus": cores, "memory": memory_mib * 1024**2, "disk": disk_gib * 1024**3,
                        "guests": guests},
            fields={"vcpus": "cores", "memory": "memory", "disk": "disk_size", "guests": "guests"})


def proxmox_next_vmid(*, cluster, client=None) -> int:
    """Proxmox's /cluster/nextid for `cluster`. Call it outside any transaction (a network call must
    not hold database locks); raises ValidationError {"cluster": ...} when Proxmox does not answer."""
    try:
        with borrowed(client, lambda: client_for(cluster.pk)) as client:
            return pve_cluster.next_vmid(client)
    except ProxmoxError as exc:
        raise ValidationError({"cluster": [f"could not get a free VMID from cluster {cluster}: {exc}"]}) from exc


def reserve_vmid(*, cluster, start: int | None = None, operation_id=None, purpose: str = "create", client=None,
                 attempts: int = 50) -> VmidReservation:
    """Reserve a free vmid of `cluster`: `start` (Proxmox's nextid, asked first when not given) or the
    next id above it that neither a reservation nor a known guest holds. No lock is held: the
    reservation row's unique (cluster, vmid) decides between concurrent requests; each insert runs in
    a savepoint, so a clash just moves on to the next id. Call it in the caller's transaction (the row
    commits with its Operation) with `start` asked before that transaction began.
    Raises ValidationError {"cluster": ...} when Proxmox does not answer or no id is free."""
    if start is None:
        start = proxmox_next_vmid(cluster=cluster, client=client)

    def taken() -> set[int]:
        return set(VmidReservation.objects.filter(cluster=cluster, vmid__gte=start).values_list("vmid", flat=True)) \
            | set(Guest.objects.filter(cluster=cluster, vmid__gte=start).values_list("vmid", flat=True))

    held, candidate = taken(), start
    for _ in range(attempts):
        while candidate in held:
            candidate += 1
        try:
            with transaction.atomic():
                return VmidReservation.objects.create(cluster=cluster, vmid=candidate, operation_id=operation_id,
                                                      purpose=purpose)
        except IntegrityError:  # a concurrent request got it first
            held |= taken() | {candidate}
    raise ValidationError({"cluster": [f"no free VMID found after {attempts} tries; try again"]})


def _title(plan: dict, vmid: int) -> str:
    kind = "VM" if plan["type"] == "qemu" else "CT"
    return f"Create {kind} {vmid} ({plan['name']}) on {plan['node']}"


def _create_operation(*, user, plan: dict, vmid: int, password: str | None, tenant) -> Operation:
    kind = "VM" if plan["type"] == "qemu" else "CT"
    return operation_create(
        kind="guest.create", user=user, task_name="guests.guest_create", cluster_id=plan["cluster_id"],
        kwargs={"plan": plan, "vmid": vmid},
        target=("guests.vmid", f"{plan['cluster_id']}:{vmid}", f"{kind} {vmid} ({plan['name']})"),
        title=_title(plan, vmid), secret=password or None, tenant=tenant)


def _enqueue(*, user, plan: dict, password: str = ""):
    from apps.approvals import services as approvals
    from apps.nodes.models import Cluster

    from ...quotas import CREATE_FIELDS, create_amounts

    check(user, "guest.create")
    cluster = Cluster.objects.get(pk=plan["cluster_id"])
    create = plan.get("create") or plan.get("config") or {}
    tenant = pool_tenant(cluster.pk, plan.get("pool"))
    amounts = create_amounts(cores=create.get("cores"), memory_mib=create.get("memory"), disk_gib=plan["disk_size"])
    above = approvals.approval_needed(user=user, tenant=tenant, amounts=amounts)
    start = proxmox_next_vmid(cluster=cluster)  # before the transaction: no lock held across the network
    with transaction.atomic():
        if above:  # waits for an operator, holding its vmid and quota from now on
            request_id = uuid.uuid4()
            reservation = reserve_vmid(cluster=cluster, start=start, operation_id=request_id, purpose="create")
            return approvals.approval_request(
                user=user, tenant=tenant, kind="guest.create", title=_title(plan, reservation.vmid),
                payload={"plan": plan, "vmid": reservation.vmid}, amounts=amounts, above=above, fields=CREATE_FIELDS,
                secret=password or None, request_id=request_id)
        reservation = reserve_vmid(cluster=cluster, start=start, purpose="create")
        vmid = reservation.vmid
        operation = _create_operation(user=user, plan=plan, vmid=vmid, password=password, tenant=tenant)
        VmidReservation.objects.filter(pk=reservation.pk).update(operation_id=operation.pk)
        reserve_capacity(operation=operation, cores=int(create.get("cores") or 1),
                         memory_mib=int(create.get("memory") or 0), disk_gib=int(plan["disk_size"] or 0))
        extensions.reserve(operation=operation, plan=plan, vmid=vmid, node=plan["node"])  # e.g. its GPU card
    return operation


def _start_approved(approval) -> Operation:
    """An operator approved a create: queue it as the requester's, on the vmid held since the request."""
    plan, vmid = approval.payload["plan"], int(approval.payload["vmid"])
    operation = _create_operation(user=approval.created_by, plan=plan, vmid=vmid, password=approval.secret,
                                  tenant=approval.tenant_id)
    VmidReservation.objects.filter(operation_id=approval.pk).update(operation_id=operation.pk)
    # What the request did not hold (its GPU card) is taken now, or the approval is refused naming it.
    extensions.reserve(operation=operation, plan=plan, vmid=vmid, node=plan["node"])
    return operation


def _release_declined(approval) -> None:
    VmidReservation.objects.filter(operation_id=approval.pk).delete()


def register_approvals() -> None:
    from apps.approvals.services import register_kind

    register_kind("guest.create", start=_start_approved, release=_release_declined)


def _in_tenant_pool(user, data: dict, planner):
    """Plan with the pool the policy places the guest in (a tenant's own; the operator's choice)."""
    plan, errors = planner(user=user, data=data)
    if errors or not plan:
        return plan, errors
    pool = placement_pool(user, plan["cluster_id"], plan.get("pool") or "")
    if pool != (plan.get("pool") or ""):
        plan, errors = planner(user=user, data={**data, "pool": pool})
    return plan, errors


def guest_create_vm(*, user, data: dict) -> Operation:
    """Validate (field map ValidationError, nothing queued), reserve a vmid and queue the creation of
    a VM as an Operation (kind `guest.create`). Raises PermissionDenied (policy.Denied) when the
    user may not create guests; a tenant's guest goes in the tenant's pool. Above one of the
    tenant's approval sizes it returns an ApprovalRequest instead (holding vmid and quota)."""
    check(user, "guest.create")
    plan, errors = _in_tenant_pool(user, data, plan_vm)
    if errors:
        raise ValidationError(dict(errors))
    return _enqueue(user=user, plan=plan)


def guest_create_ct(*, user, data: dict) -> Operation:
    """As guest_create_vm, for a container; the root password travels encrypted beside the operation."""
    check(user, "guest.create")
    plan, errors = _in_tenant_pool(user, data, plan_ct)
    if errors:
        raise ValidationError(dict(errors))
    return _enqueue(user=user, plan=plan, password=data.get("password") or "")
