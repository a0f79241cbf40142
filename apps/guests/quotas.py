"""Guests' side of tenant quotas (apps.permissions.quotas): what a tenant's guests use, the
reservation hook the guests' services call, and settling reservations when operations end.

What counts (decided here): vCPUs and memory of guests that can run (templates never start),
disk and the guest count of every guest including templates (they hold storage and a VMID),
snapshots per guest from the synced Snapshot rows, backups = backup volumes of the tenant's guests."""

from __future__ import annotations

from django.db.models import Count, Exists, Max, OuterRef, Sum
from django.dispatch import receiver

from apps.operations.models import Operation
from apps.operations.signals import operation_finished
from apps.permissions import quotas
from apps.permissions.choices import QuotaResource

from .models import Guest, Snapshot

R = QuotaResource


def _guests(tenant):
    return Guest.objects.filter(tenant=tenant)


def _sum(qs, field: str) -> int:
    return int(qs.aggregate(total=Sum(field))["total"] or 0)


def _snapshots(tenant, subject: str | None = None) -> int:
    if subject:
        cluster_id, vmid = subject.split(":")
        return Snapshot.objects.filter(guest__tenant=tenant, guest__cluster_id=int(cluster_id),
                                       guest__vmid=int(vmid)).count()
    fullest = _guests(tenant).annotate(n=Count("snapshots")).aggregate(m=Max("n"))["m"]
    return int(fullest or 0)


def _backups(tenant) -> int:
    from apps.storage.models import StorageContent

    own = Guest.objects.filter(tenant=tenant, cluster_id=OuterRef("storage__cluster_id"), vmid=OuterRef("vmid"))
    return StorageContent.objects.filter(content="backup").filter(Exists(own)).count()


def register() -> None:
    quotas.register_usage(R.VCPUS, lambda t: _sum(_guests(t).filter(template=False), "maxcpu"))
    quotas.register_usage(R.MEMORY, lambda t: _sum(_guests(t).filter(template=False), "maxmem"))
    quotas.register_usage(R.DISK, lambda t: _sum(_guests(t), "maxdisk"))
    quotas.register_usage(R.GUESTS, lambda t: _guests(t).count())
    quotas.register_usage(R.SNAPSHOTS_PER_GUEST, _snapshots)
    quotas.register_usage(R.BACKUPS, _backups)


def subject(guest) -> str:
    """The per-guest quota subject of `guest` (snapshots per guest)."""
    return f"{guest.cluster_id}:{guest.vmid}"


GIB, MIB = 1024**3, 1024**2


def reserve(operation: Operation, amounts: dict, *, fields: dict | None = None, subject: str | None = None,
            tenant=...) -> None:
    """Reserve `amounts` for `operation` from its tenant's quotas (or `tenant`'s: where a new guest
    lands), in the transaction that created it. No tenant (operators' own guests): nothing.
    Raises QuotaExceeded (ValidationError naming fields[resource])."""
    tenant_id = operation.tenant_id if tenant is ... else getattr(tenant, "pk", tenant)
    if tenant_id is None:
        return
    quotas.quota_reserve(tenant=tenant_id, operation_id=operation.pk, amounts=amounts, subject=subject,
                         fields=fields)


def copy_amounts(guest) -> dict:
    """What a new guest made from `guest` (clone, restore as new) takes: its size, one guest."""
    return {R.VCPUS: guest.maxcpu, R.MEMORY: guest.maxmem, R.DISK: guest.maxdisk, R.GUESTS: 1}


def config_amounts(guest, plan, changes: dict) -> tuple[dict, dict]:
    """What a config change adds (only growth counts; shrinking frees at the next sync) and the
    request field each quota is reported on: (amounts, fields)."""
    amounts, fields = {}, {}
    params = plan.params
    runnable = not guest.template
    if runnable and "cores" in params:
        sockets = int((guest.config or {}).get("sockets") or 1) if guest.type == "qemu" else 1
        amounts[R.VCPUS], fields[R.VCPUS] = int(params["cores"]) * sockets - guest.maxcpu, "cores"
    if runnable and "memory" in params:
        amounts[R.MEMORY], fields[R.MEMORY] = int(params["memory"]) * MIB - guest.maxmem, "memory"
    from .actions.config.validation import resizable_disks

    current = {d["key"]: d["bytes"] for d in resizable_disks(guest)}
    grow = sum(int(size.rstrip("G")) * GIB - current.get(key, 0) for key, size in plan.resizes)
    added = [int(d.get("size") or 0) * GIB for d in changes.get("add_disks") or []]
    if grow + sum(added) > 0:
        amounts[R.DISK] = grow + sum(added)
        fields[R.DISK] = f"resize.{plan.resizes[0][0]}" if plan.resizes else "add_disks"
    return {k: v for k, v in amounts.items() if v > 0}, fields


def hold(tenant, amounts: dict, fields: dict | None = None, *, subject: str | None = None):
    """Reserve before a synchronous Proxmox call that must not run inside a locked transaction
    (the config PUT): the reservation commits under a provisional id now; attach() moves it to the
    operation, drop() frees it if the call fails. A crash in between: the sync releases it (no
    such operation). Returns the provisional id (None when nothing was reserved)."""
    import uuid

    from django.db import transaction

    tenant_id = getattr(tenant, "pk", tenant)
    if tenant_id is None or not amounts:
        return None
    provisional = uuid.uuid4()
    with transaction.atomic():
        quotas.quota_reserve(tenant=tenant_id, operation_id=provisional, amounts=amounts, subject=subject,
                             fields=fields)
    return provisional


def attach(provisional, operation: Operation) -> None:
    if provisional is not None:
        from apps.permissions.models import Reservation

        Reservation.objects.filter(operation_id=provisional).update(operation_id=operation.pk)


def drop(provisional) -> None:
    if provisional is not None:
        quotas.quota_release(operation_id=provisional)


@receiver(operation_finished, dispatch_uid="guests.quotas.settle")
def _settle(sender, operation: Operation, **kwargs) -> None:
    # Succeeded: what it made now exists and counts by itself; otherwise the capacity is free again.
    if operation.status == "succeeded":
        quotas.quota_commit(operation_id=operation.pk)
    else:
        quotas.quota_release(operation_id=operation.pk)


def reconcile(cluster=None, snapshot=None) -> dict:
    """Sync handler: settle reservations whose operation ended without the finish hook (or is gone)."""
    from datetime import timedelta

    from django.utils import timezone

    from apps.permissions.models import Reservation

    from apps.approvals.services import waiting_ids

    held = quotas.reserved_operation_ids() - waiting_ids()  # a waiting approval holds its own
    if not held:
        return {}
    status = dict(Operation.objects.filter(pk__in=held).values_list("pk", "status"))
    # A hold() waits for its operation a few seconds; only one left far longer lost its request.
    orphans = set(Reservation.objects.filter(operation_id__in=held - set(status), state="reserved",
                                             created__lt=timezone.now() - timedelta(minutes=5))
                  .values_list("operation_id", flat=True))
    ended = {pk: status.get(pk) == "succeeded" for pk in held
             if (pk in status and status[pk] not in ("pending", "running")) or pk in orphans}
    return quotas.quota_reconcile(ended=ended)


CREATE_FIELDS = {R.VCPUS: "cores", R.MEMORY: "memory", R.DISK: "disk_size", R.GUESTS: "guests"}


def create_amounts(*, cores, memory_mib, disk_gib) -> dict:
    """What a new guest of the create wizard / API takes, in quota units."""
    def number(value) -> int:
        try:
            return max(0, int(value or 0))
        except (TypeError, ValueError):
            return 0
    return {R.VCPUS: number(cores) or 1, R.MEMORY: number(memory_mib) * MIB, R.DISK: number(disk_gib) * GIB,
            R.GUESTS: 1}


def preview_errors(tenant, amounts: dict, fields: dict | None = None) -> dict[str, list[str]]:
    """The refusals a request would get now (no lock, nothing reserved): for the wizard's Next, so a
    request over quota is named on its field before the last step; the create still decides."""
    if tenant is None:
        return {}
    fields, errors = fields or {}, {}
    for row in quotas.quota_preview(tenant=tenant, amounts=amounts):
        if row["over"] and row["requested"]:
            item = quotas.Exceeded(tenant=tenant, resource=row["resource"], limit=row["limit"], used=row["used"],
                                   reserved=row["reserved"], requested=row["requested"],
                                   field=fields.get(row["resource"]))
            errors.setdefault(item.field, []).append(item.text)
    return errors
