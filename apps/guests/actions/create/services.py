"""Create services: capacity hook, vmid reservation and the operation, in one transaction."""

from __future__ import annotations

from django.core.cache import cache
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import IntegrityError, connection, transaction

from apps.core.fields import encrypt
from apps.core.scoping import is_operator
from apps.operations.clients import client_for
from apps.operations.models import Operation
from apps.operations.services import operation_create
from apps.proxmox import ProxmoxError, ProxmoxValidationError

from ...models import Guest, VmidReservation
from .plans import plan_ct, plan_vm

SECRET_TTL = 24 * 3600  # how long the CT root password may wait for its worker


def reserve_capacity(*, user, cluster, cores: int, memory_mib: int, disk_gib: int) -> None:
    """Tenant quota hook (apps.permissions fills it): reserve the guest's vCPUs, memory and disk
    inside the caller's transaction (select_for_update on the quota), raising ValidationError
    (field map) when over quota. Now operators have no quota, so this reserves nothing."""


_VMID_LOCK = 0x766D6964  # advisory lock namespace ("vmid")


def reserve_vmid(*, cluster, operation_id=None, purpose: str = "create", client=None,
                 attempts: int = 50) -> VmidReservation:
    """Reserve a free vmid of `cluster`: Proxmox's /cluster/nextid answer, or the next id above it
    that neither a reservation nor a known guest holds (checked again with nextid?vmid=). Runs in a
    savepoint per try, so a clash with a concurrent request (unique (cluster, vmid)) just moves on.
    Call inside the caller's transaction (it holds a per-cluster advisory lock until commit): the
    row commits with its Operation. Raises
    ValidationError {"cluster": ...} when Proxmox does not answer or no id is free."""
    own = client is None
    client = client or client_for(cluster.pk)
    try:
        first = int(client.get("cluster/nextid"))
        # One reserver per cluster at a time (until the caller commits): concurrent requests then see
        # each other's reservations instead of racing on the same ids.
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(%s, %s)", [_VMID_LOCK, cluster.pk])

        def taken() -> set[int]:
            return set(VmidReservation.objects.filter(cluster=cluster, vmid__gte=first).values_list("vmid", flat=True)) \
                | set(Guest.objects.filter(cluster=cluster, vmid__gte=first).values_list("vmid", flat=True))

        held, candidate = taken(), first
        for _ in range(attempts):
            while candidate in held:
                candidate += 1
            if candidate != first:
                try:
                    client.get("cluster/nextid", vmid=candidate)
                except ProxmoxValidationError:  # Proxmox has it (a guest we have not synced yet)
                    held.add(candidate)
                    continue
            try:
                with transaction.atomic():
                    return VmidReservation.objects.create(cluster=cluster, vmid=candidate, operation_id=operation_id,
                                                          purpose=purpose)
            except IntegrityError:  # a concurrent request got it first
                held |= taken() | {candidate}
    except ProxmoxError as exc:
        raise ValidationError({"cluster": [f"could not get a free VMID from cluster {cluster}: {exc}"]}) from exc
    finally:
        if own:
            client.close()
    raise ValidationError({"cluster": [f"no free VMID found after {attempts} tries; try again"]})


def secret_cache_key(operation_id) -> str:
    return f"guests:create-secret:{operation_id}"


def _enqueue(*, user, plan: dict, password: str = "") -> Operation:
    from apps.nodes.models import Cluster

    if not is_operator(user):
        raise PermissionDenied("only operators may create guests until tenancy exists")
    cluster = Cluster.objects.get(pk=plan["cluster_id"])
    kind = "VM" if plan["type"] == "qemu" else "CT"
    with transaction.atomic():
        create = plan.get("create") or plan.get("config") or {}
        reserve_capacity(user=user, cluster=cluster, cores=int(create.get("cores") or 1),
                         memory_mib=int(create.get("memory") or 0), disk_gib=int(plan["disk_size"] or 0))
        reservation = reserve_vmid(cluster=cluster, purpose="create")
        vmid = reservation.vmid
        operation = operation_create(
            kind="guest.create", user=user, task_name="guests.guest_create", cluster_id=cluster.pk,
            kwargs={"plan": plan, "vmid": vmid}, target=("guests.vmid", f"{cluster.pk}:{vmid}", f"{kind} {vmid} ({plan['name']})"),
            title=f"Create {kind} {vmid} ({plan['name']}) on {plan['node']}")
        VmidReservation.objects.filter(pk=reservation.pk).update(operation_id=operation.pk)
        if password:
            cache.set(secret_cache_key(operation.pk), encrypt(password), SECRET_TTL)
    return operation


def guest_create_vm(*, user, data: dict) -> Operation:
    """Validate (field map ValidationError, nothing queued), reserve a vmid and queue the creation of
    a VM as an Operation (kind `guest.create`). Raises PermissionDenied for non-operators."""
    if not is_operator(user):
        raise PermissionDenied("only operators may create guests until tenancy exists")
    plan, errors = plan_vm(user=user, data=data)
    if errors:
        raise ValidationError(dict(errors))
    return _enqueue(user=user, plan=plan)


def guest_create_ct(*, user, data: dict) -> Operation:
    """As guest_create_vm, for a container; the root password travels encrypted beside the operation."""
    if not is_operator(user):
        raise PermissionDenied("only operators may create guests until tenancy exists")
    plan, errors = plan_ct(user=user, data=data)
    if errors:
        raise ValidationError(dict(errors))
    return _enqueue(user=user, plan=plan, password=data.get("password") or "")
