"""Tenant quotas: reserve before any Proxmox call, commit or release when the operation ends.

Usage of a resource = what exists (a usage function the owning app registers:
register_usage(resource, fn(tenant) -> int), e.g. guests counts its Guest rows) + what operations
in flight hold (RESERVED Reservation rows). quota_reserve runs in the caller's transaction (the one
that creates the operation) and locks the Tenant row, then its Quota rows in resource order, so
concurrent reservations of one tenant take turns even where no limit is set. A committed
reservation stops counting: by then the object exists and its usage function counts it.

Per-subject quotas ("snapshots_per_guest") count one object: the caller passes `subject`
(e.g. "1:105" for cluster 1, vmid 105); the reservation row's resource is "<resource>@<subject>".
"""

from __future__ import annotations

from typing import Callable

from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import Sum

from apps.core.units import binary_size

from .choices import QuotaResource, ReservationState
from .models import Quota, Reservation, Tenant

_usage: dict[str, Callable] = {}

BYTE_RESOURCES = {QuotaResource.MEMORY, QuotaResource.DISK}
PER_SUBJECT = {QuotaResource.SNAPSHOTS_PER_GUEST}


def register_usage(resource: str, fn: Callable) -> None:
    """How much of `resource` a tenant's existing objects use: fn(tenant) -> int; a per-subject
    resource's fn takes (tenant, subject=None) and answers the largest subject's use when None.
    A prefix such as "gpu:" covers every "gpu:<profile id>": fn(tenant, resource)."""
    _usage[resource] = fn


def label(resource: str) -> str:
    if resource.startswith("gpu:"):
        return f"GPUs ({resource[4:]})"
    return dict(QuotaResource.choices).get(resource, resource)


def amount_text(resource: str, amount) -> str:
    """How a quantity of `resource` reads: bytes in binary units, counts as numbers."""
    if amount is None:
        return "unlimited"
    return binary_size(amount) if resource in BYTE_RESOURCES else str(int(amount))


_more_usage: dict[str, list[Callable]] = {}


def register_more_usage(resource: str, fn: Callable) -> None:
    """Another app's objects that also use `resource` (e.g. ISO images a tenant uploaded use disk
    besides its guests): fn(tenant) -> int, added to what register_usage's function counts."""
    if fn not in _more_usage.setdefault(resource, []):
        _more_usage[resource].append(fn)


def _used(tenant, resource: str, subject: str | None = None) -> int:
    more = sum(int(fn(tenant) or 0) for fn in _more_usage.get(resource, ()))
    return _used_by_owner(tenant, resource, subject) + more


def _used_by_owner(tenant, resource: str, subject: str | None = None) -> int:
    fn = _usage.get(resource)
    if fn is None and ":" in resource:  # "gpu:<id>": one function registered for the prefix "gpu:"
        family = _usage.get(resource.split(":", 1)[0] + ":")
        return int(family(tenant, resource) or 0) if family is not None else 0
    if fn is None:
        return 0
    if resource in PER_SUBJECT:
        return int(fn(tenant, subject) or 0)
    return int(fn(tenant) or 0)


def _key(resource: str, subject: str | None) -> str:
    return f"{resource}@{subject}" if resource in PER_SUBJECT and subject else resource


def _reserved(tenant, key: str) -> int:
    return int(Reservation.objects.filter(tenant=tenant, resource=key, state=ReservationState.RESERVED)
               .aggregate(total=Sum("amount"))["total"] or 0)


class Exceeded:
    """One quota a request goes over, and its figures."""

    def __init__(self, *, tenant, resource: str, limit: int, used: int, reserved: int, requested: int,
                 field: str | None = None):
        self.tenant, self.resource, self.limit = tenant, resource, limit
        self.used, self.reserved, self.requested = used, reserved, requested
        self.field = field or resource
        self.over = used + reserved + requested - limit
        text = lambda n: amount_text(resource, n)  # noqa: E731
        self.text = (f"quota '{label(resource)}' of tenant {tenant.slug} exceeded by {text(self.over)}: "
                     f"limit {text(limit)}, used {text(used)}, reserved {text(reserved)}, requested {text(requested)}")


class QuotaExceeded(ValidationError):
    """A request over one or more of a tenant's quotas: a field-map ValidationError, each message
    on the request's field for that quota (e.g. "memory", "cores"), all quotas it goes over at once."""

    def __init__(self, exceeded: list[Exceeded]):
        self.exceeded = exceeded
        errors: dict[str, list[str]] = {}
        for item in exceeded:
            errors.setdefault(item.field, []).append(item.text)
        super().__init__(errors)


def quota_reserve(*, tenant, operation_id, amounts: dict[str, int], subject: str | None = None,
                  fields: dict[str, str] | None = None) -> None:
    """Reserve `amounts` ({resource: amount}) of `tenant`'s quotas for operation `operation_id`.

    Must run inside the caller's transaction (the one creating the operation): the locks are held
    until it commits. Raises QuotaExceeded (a ValidationError naming `fields[resource]`, default
    the resource, for every resource over its limit); nothing is reserved then. No tenant
    (an operator's own guests) or nothing positive to reserve: a no-op."""
    amounts = {r: int(a) for r, a in amounts.items() if a and int(a) > 0}
    if tenant is None or not amounts:
        return
    if not transaction.get_connection().in_atomic_block:
        raise RuntimeError("quota_reserve must run inside the transaction that creates the operation")
    # Fixed lock order (tenant, then its quotas by resource): no deadlock between two reservations.
    # NO KEY UPDATE: the Operation and Reservation inserts of this transaction hold KEY SHARE on it.
    tenant = Tenant.objects.select_for_update(no_key=True).get(pk=getattr(tenant, "pk", tenant))
    limits = {q.resource: q.limit for q in
              Quota.objects.select_for_update().filter(tenant=tenant).order_by("resource")}
    fields, exceeded = fields or {}, []
    for resource in sorted(amounts):
        limit = limits.get(resource)
        if limit is None:
            continue
        used, reserved = _used(tenant, resource, subject), _reserved(tenant, _key(resource, subject))
        if used + reserved + amounts[resource] > limit:
            exceeded.append(Exceeded(tenant=tenant, resource=resource, limit=limit, used=used, reserved=reserved,
                                     requested=amounts[resource], field=fields.get(resource)))
    if exceeded:
        raise QuotaExceeded(exceeded)
    Reservation.objects.bulk_create([
        Reservation(tenant=tenant, operation_id=operation_id, resource=_key(resource, subject), amount=amount)
        for resource, amount in sorted(amounts.items())])


def quota_commit(*, operation_id) -> int:
    """The operation succeeded: its objects exist now and count through the usage functions."""
    return Reservation.objects.filter(operation_id=operation_id, state=ReservationState.RESERVED).update(
        state=ReservationState.COMMITTED)


def quota_release(*, operation_id) -> int:
    """The operation failed or was cancelled: what it held is free again."""
    return Reservation.objects.filter(operation_id=operation_id, state=ReservationState.RESERVED).update(
        state=ReservationState.RELEASED)


def quota_reconcile(*, ended: dict) -> dict[str, int]:
    """Settle reservations still RESERVED whose operation has ended (its finish hook never ran):
    `ended` maps operation id -> True (succeeded: commit) / False (failed, cancelled, gone: release).
    Called at sync by the app that knows operations (it may not be imported here)."""
    counts = {"committed": 0, "released": 0}
    for operation_id, succeeded in ended.items():
        if succeeded:
            counts["committed"] += quota_commit(operation_id=operation_id)
        else:
            counts["released"] += quota_release(operation_id=operation_id)
    return counts


def reserved_operation_ids() -> set:
    """Operations that still hold a reservation (for the reconciler)."""
    return set(Reservation.objects.filter(state=ReservationState.RESERVED).values_list("operation_id", flat=True)
               .distinct())


def quota_usage(*, tenant) -> list[dict]:
    """Each resource of `tenant`: {resource, label, limit (None = unlimited), used, reserved}.
    Per-guest resources answer the fullest guest; GPU profiles appear once limited or reserved."""
    limits = dict(Quota.objects.filter(tenant=tenant).values_list("resource", "limit"))
    reserved: dict[str, int] = {}
    for key, total in (Reservation.objects.filter(tenant=tenant, state=ReservationState.RESERVED)
                       .values("resource").annotate(total=Sum("amount")).values_list("resource", "total")):
        resource = key.split("@", 1)[0]
        # Per-subject: the subject holding the most, as used is the fullest subject's.
        reserved[resource] = max(reserved.get(resource, 0), int(total)) if "@" in key \
            else reserved.get(resource, 0) + int(total)
    resources = list(QuotaResource.values) + sorted(r for r in {*limits, *reserved} if r not in QuotaResource.values)
    return [{"resource": r, "label": label(r), "limit": limits.get(r), "used": _used(tenant, r),
             "reserved": int(reserved.get(r) or 0)} for r in resources]


def quota_preview(*, tenant, amounts: dict[str, int], subject: str | None = None) -> list[dict]:
    """quota_usage plus what a request would take and leave, per resource (the wizard's bars):
    adds requested, after (used + reserved + requested), left (None if unlimited), over (bool),
    and the percentages of the bar's parts (used, reserved, requested) of the limit."""
    rows = []
    for row in quota_usage(tenant=tenant):
        r = row["resource"]
        if r in PER_SUBJECT and subject:
            row = dict(row, used=_used(tenant, r, subject), reserved=_reserved(tenant, _key(r, subject)))
        requested = max(int(amounts.get(r) or 0), 0)
        after = row["used"] + row["reserved"] + requested
        limit = row["limit"]
        row.update(requested=requested, after=after, left=None if limit is None else limit - after,
                   over=limit is not None and after > limit)

        def pct(n, limit=limit):
            return 0 if not limit else min(100.0, round(100.0 * n / limit, 1))

        row.update(used_pct=pct(row["used"]), reserved_pct=pct(row["reserved"]), requested_pct=pct(requested),
                   text={k: amount_text(r, row[k]) for k in ("limit", "used", "reserved", "requested", "after")}
                   | {"left": amount_text(r, row["left"]) if row["left"] is not None else "unlimited"},
                   over_text=amount_text(r, after - limit) if row["over"] else "")
        rows.append(row)
    return rows


def quota_set(*, tenant, limits: dict[str, int | None], user=None, request=None) -> list[dict]:
    """Set `tenant`'s limits ({resource: limit}; None = unlimited, its row goes). Operators only
    (policy "quota.set"; the caller checks). Resources not named keep their limit. Audited.
    A limit below what is used is accepted (it only refuses new requests), as Proxmox pools and
    OpenStack quotas do. Returns quota_usage(tenant)."""
    from apps.core.models import AuditResult
    from apps.core.services import audit_log

    with transaction.atomic():
        Tenant.objects.select_for_update(no_key=True).get(pk=tenant.pk)  # no reservation decides meanwhile
        for resource, limit in sorted(limits.items()):
            if limit is None:
                Quota.objects.filter(tenant=tenant, resource=resource).delete()
            else:
                Quota.objects.update_or_create(tenant=tenant, resource=resource, defaults={"limit": int(limit)})
    audit_log(user=user, action="quota.set", target=tenant, result=AuditResult.SUCCESS, request=request,
              detail={"limits": limits})
    return quota_usage(tenant=tenant)
