"""Leases: a guest's expiry, its warning, extension, and what happens at the end.

- A guest that the portal creates (create, clone, restore as new) for a tenant with `lease_days`
  gets a lease of that many days when its operation succeeds; operators set or clear any guest's
  lease (lease_set).
- Owners are warned in the portal from LEASE_WARNING_DAYS before expiry (the guest page, the
  leases page, the dashboard); the sweep records the warning in the audit log.
- Owners extend (lease_extend) by at most the tenant's `lease_max_extension_days` at a time (else
  `lease_days`), and never further than a full term ahead: max(lease_days, that limit) from now,
  so a lease renewed forever still ends if nobody renews it.
- At expiry the sweep (Celery beat, leases.lease_sweep) stops the guest, and `lease_grace_days`
  after expiry deletes it (purged from backup jobs and HA), each an Operation with its audit
  entry. Extending during the grace period saves the guest (it stays stopped until started).

Every function takes `now` so the sweep can be run at any moment (tests move time forward).
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import transaction
from django.dispatch import receiver
from django.utils import timezone

from apps.core.models import AuditResult
from apps.core.services import audit_log
from apps.guests.models import Guest
from apps.operations.choices import ACTIVE_STATUSES
from apps.operations.models import Operation
from apps.operations.services import QueueUnavailable, operation_create
from apps.operations.signals import operation_finished
from apps.permissions.policy import check

from .models import Lease

logger = logging.getLogger(__name__)

DEFAULT_EXTENSION_DAYS = 30  # a lease an operator set on a guest of no tenant (or one without a lease policy)
DEFAULT_GRACE_DAYS = 7
MAX_DAYS = 3650


def warning_days() -> int:
    return int(getattr(settings, "LEASE_WARNING_DAYS", 7))


def extension_limits(guest: Guest) -> tuple[int, int]:
    """(days one extension may add, days ahead a lease may reach) for `guest`'s tenant."""
    tenant = guest.tenant
    per = (tenant.lease_max_extension_days or tenant.lease_days) if tenant is not None else None
    per = per or DEFAULT_EXTENSION_DAYS
    return per, max(per, (tenant.lease_days or 0) if tenant is not None else 0)


def grace_days(guest: Guest) -> int:
    return guest.tenant.lease_grace_days if guest.tenant is not None else DEFAULT_GRACE_DAYS


def delete_at(lease: Lease) -> datetime:
    return lease.expires_at + timedelta(days=grace_days(lease.guest))


def lease_state(lease: Lease, now: datetime | None = None) -> str:
    """active | expiring (within the warning days, or the sweep warned) | expired (ended, or the sweep
    stopped it: in its grace period) | deleting. The sweep's marks count as much as the clock."""
    now = now or timezone.now()
    if lease.delete_operation_id:
        return "deleting"
    if lease.stopped_at or lease.expires_at <= now:
        return "expired"
    if lease.warned_at or lease.expires_at - timedelta(days=warning_days()) <= now:
        return "expiring"
    return "active"


def describe(lease: Lease | None, now: datetime | None = None) -> dict | None:
    """What the pages show of a lease (None: the guest has none)."""
    if lease is None:
        return None
    now = now or timezone.now()
    per, reach = extension_limits(lease.guest)
    return {"lease": lease, "state": lease_state(lease, now), "expires_at": lease.expires_at,
            "delete_at": delete_at(lease), "days_left": max(0, (lease.expires_at - now).days),
            "max_days": per, "reach_days": reach}


# -- setting and extending -------------------------------------------------------------------


def _unmark(lease: Lease) -> None:
    lease.warned_at = lease.stopped_at = lease.stop_operation_id = None


def lease_set(*, guest: Guest, user, expires_at: datetime | None, request=None) -> Lease | None:
    """Operators: give `guest` a lease ending at `expires_at` (replacing any), or none (None).
    Raises NotVisible/Denied; ValidationError {"expires_at"} beyond MAX_DAYS or while the guest
    is being deleted for its lease."""
    check(user, "lease.set", guest, request=request)
    if expires_at is not None and expires_at > timezone.now() + timedelta(days=MAX_DAYS):
        raise ValidationError({"expires_at": [f"at most {MAX_DAYS} days ahead"]})
    with transaction.atomic():
        lease = Lease.objects.select_for_update().filter(guest=guest).first()
        if lease is not None and lease.delete_operation_id:
            raise ValidationError({"expires_at": ["the guest is being deleted because its lease ended"]})
        if expires_at is None:
            if lease is not None:
                lease.delete()
            lease = None
        else:
            lease = lease or Lease(guest=guest)
            lease.expires_at = expires_at
            _unmark(lease)
            lease.save()
        audit_log(user=user, action="guest.lease_set", target=guest, result=AuditResult.SUCCESS, request=request,
                  detail={"expires_at": expires_at.isoformat() if expires_at else None}, tenant_id=guest.tenant_id)
    return lease


def lease_extend(*, lease: Lease, user, days, now: datetime | None = None, request=None) -> Lease:
    """The guest's owners extend its lease by `days` (see the module docstring for the limits).
    Raises NotVisible/Denied; ValidationError {"days": ...} saying what is allowed; nothing changes
    then. An expired lease extended in its grace period is live again (the guest stays stopped)."""
    guest = lease.guest
    check(user, "guest.lease_extend", guest, request=request)
    now = now or timezone.now()
    per, reach = extension_limits(guest)
    try:
        days = int(days)
    except (TypeError, ValueError):
        raise ValidationError({"days": ["a whole number of days"]}) from None
    if not 1 <= days <= per:
        raise ValidationError({"days": [f"extend by 1 to {per} days at a time"]})
    with transaction.atomic():
        locked = Lease.objects.select_for_update().get(pk=lease.pk)
        if locked.delete_operation_id:
            raise ValidationError({"days": ["too late: the guest is being deleted because its lease ended"]})
        base, limit = max(locked.expires_at, now), now + timedelta(days=reach)
        wanted = base + timedelta(days=days)
        if wanted > limit:
            room = (limit - base).days
            raise ValidationError({"days": [
                f"a lease reaches at most {reach} days ahead (to {limit:%Y-%m-%d}); " +
                (f"extend by at most {room} days now" if room >= 1 else "extend it again once fewer days are left")]})
        before = locked.expires_at
        locked.expires_at, locked.extensions = wanted, locked.extensions + 1
        _unmark(locked)
        locked.save()
        audit_log(user=user, action="guest.lease_extend", target=guest, result=AuditResult.SUCCESS, request=request,
                  detail={"days": days, "from": before.isoformat(), "to": wanted.isoformat()},
                  tenant_id=guest.tenant_id)
    return locked


# New guests of a tenant with a lease policy: the kwargs key naming the new vmid, per operation kind.
_NEW_VMID = {"guest.create": "vmid", "guest.clone": "newid", "guest.restore": "vmid"}


@receiver(operation_finished, dispatch_uid="leases.new_guest")
def _lease_new_guest(sender, operation: Operation, **kwargs) -> None:
    key = _NEW_VMID.get(operation.kind)
    if operation.status != "succeeded" or key is None or operation.cluster_id is None:
        return
    kwargs = operation.task_kwargs or {}
    if operation.kind == "guest.restore" and kwargs.get("target") != "new":
        return  # restored in place: the guest keeps the lease it has
    vmid = kwargs.get(key)
    guest = Guest.objects.select_related("tenant").filter(cluster_id=operation.cluster_id, vmid=vmid).first()
    if guest is None or guest.tenant is None or not guest.tenant.lease_days:
        return
    now = timezone.now()
    _, created = Lease.objects.get_or_create(guest=guest, defaults={
        "expires_at": now + timedelta(days=guest.tenant.lease_days)})
    if created:
        audit_log(user=None, action="guest.lease_set", target=guest, result=AuditResult.SUCCESS,
                  detail={"days": guest.tenant.lease_days, "default_of": guest.tenant.slug}, tenant_id=guest.tenant_id)


# -- the sweep -------------------------------------------------------------------------------


def lease_sweep(*, now: datetime | None = None) -> dict[str, int]:
    """Warn, stop and delete what is due at `now` (default: now). Each step happens once per lease
    (the marks on the row, set under a row lock); a stop or delete is an Operation (kind
    guest.lease_stop / guest.lease_delete) with an audit entry. A delete waits until the stop
    operation has ended. Returns how many of each it did."""
    now = now or timezone.now()
    done = {"warned": 0, "stopped": 0, "deleted": 0}
    soon = now + timedelta(days=warning_days())
    for lease in Lease.objects.filter(warned_at=None, expires_at__gt=now, expires_at__lte=soon).select_related("guest"):
        with transaction.atomic():
            if Lease.objects.filter(pk=lease.pk, warned_at=None).update(warned_at=now):
                audit_log(user=None, action="guest.lease_warning", target=lease.guest, result=AuditResult.SUCCESS,
                          detail={"expires_at": lease.expires_at.isoformat()}, tenant_id=lease.guest.tenant_id)
                done["warned"] += 1
    for lease in Lease.objects.filter(stopped_at=None, delete_operation_id=None, expires_at__lte=now):
        done["stopped"] += _queue(lease.pk, "stop", now)
    due = Lease.objects.filter(delete_operation_id=None, expires_at__lte=now).exclude(stopped_at=None) \
        .select_related("guest__tenant")
    for lease in due:
        stopping = lease.stop_operation_id and Operation.objects.filter(pk=lease.stop_operation_id,
                                                                        status__in=ACTIVE_STATUSES).exists()
        if delete_at(lease) <= now and not stopping:
            done["deleted"] += _queue(lease.pk, "delete", now)
    return done


def _queue(lease_pk: int, step: str, now: datetime) -> int:
    """Queue the stop or delete of one lease's guest, if it is still due (another sweep may have)."""
    due = {"stop": {"stopped_at": None}, "delete": {"stopped_at__isnull": False}}[step]
    try:
        with transaction.atomic():
            lease = (Lease.objects.select_for_update(skip_locked=True, of=("self",)).select_related("guest__node")
                     .filter(pk=lease_pk, delete_operation_id=None, expires_at__lte=now, **due).first())
            if lease is None:
                return 0
            guest = lease.guest
            verb = "Stop" if step == "stop" else "Delete"
            operation = operation_create(
                kind=f"guest.lease_{step}", user=None, task_name="leases.lease_expire", target=guest,
                kwargs={"guest_id": guest.pk, "step": step}, cluster_id=guest.cluster_id, tenant=guest.tenant_id,
                title=f"{verb} {guest.kind} {guest}: its lease ended {lease.expires_at:%Y-%m-%d %H:%M}")
            if step == "stop":
                lease.stopped_at, lease.stop_operation_id = now, operation.pk
            else:
                lease.delete_operation_id = operation.pk
            lease.save(update_fields=["stopped_at", "stop_operation_id", "delete_operation_id", "updated"])
            audit_log(user=None, action=f"guest.lease_{step}", target=guest, result=AuditResult.ACCEPTED,
                      detail={"operation": str(operation.pk), "expired": lease.expires_at.isoformat()},
                      tenant_id=guest.tenant_id)
    except QueueUnavailable as exc:  # nothing saved: the next sweep tries again
        logger.warning("lease %s: %s not queued: %s", lease_pk, step, exc)
        return 0
    return 1


def expiring_for(*, user, now: datetime | None = None):
    """The leases the user sees that end within the warning days or have ended (the portal's warning)."""
    from django.db.models import Q

    from .selectors import lease_list

    now = now or timezone.now()
    return lease_list(user=user).filter(Q(expires_at__lte=now + timedelta(days=warning_days())) |
                                        Q(warned_at__isnull=False) | Q(stopped_at__isnull=False))
