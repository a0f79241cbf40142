"""Approval of tenant requests above a size: request (reserve now), approve (run), decline, withdraw.

A tenant can require an operator's approval for requests above a size (Tenant.approval_above_*).
Such a request takes its quota reservation at request time, in the transaction that saves it,
under the request's id, so the capacity an operator approves is the capacity the tenant was
promised; approval moves the reservation to the operation it starts, a decline or a withdrawal
releases it. The app that owns a kind of request registers how to start its operation and what
else to free (register_kind): this app never imports the apps above it.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass

from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from apps.core.models import AuditResult
from apps.core.services import audit_log
from apps.permissions import quotas
from apps.permissions.choices import QuotaResource, ReservationState
from apps.permissions.models import Reservation, Tenant
from apps.permissions.policy import as_actor, check

from .choices import ApprovalStatus
from .models import ApprovalRequest

REASON_MAX = 2000


@dataclass(frozen=True)
class Kind:
    start: Callable  # (approval) -> Operation, inside the approving transaction
    release: Callable  # (approval) -> None: free what the request held besides its quota


_kinds: dict[str, Kind] = {}


def register_kind(kind: str, *, start: Callable, release: Callable) -> None:
    _kinds[kind] = Kind(start=start, release=release)


def _kind(kind: str) -> Kind:
    try:
        return _kinds[kind]
    except KeyError:
        raise RuntimeError(f"no handler registered for approval requests of kind {kind!r}") from None


# Tenant field -> (quota resource, what it is called)
_SIZES = [("approval_above_vcpus", QuotaResource.VCPUS), ("approval_above_memory", QuotaResource.MEMORY),
          ("approval_above_disk", QuotaResource.DISK)]


def approval_above(*, tenant, amounts: dict) -> list[str]:
    """The tenant's approval sizes the request (`amounts`, quota units) is above, in words;
    empty when it needs no approval."""
    if tenant is None:
        return []
    if not isinstance(tenant, Tenant):
        tenant = Tenant.objects.get(pk=tenant)
    above = []
    for field, resource in _SIZES:
        size, asked = getattr(tenant, field), int(amounts.get(resource) or 0)
        if size is not None and asked > size:
            above.append(f"{quotas.label(resource)} {quotas.amount_text(resource, asked)} is above "
                         f"{quotas.amount_text(resource, size)}")
    return above


def approval_needed(*, user, tenant, amounts: dict) -> list[str]:
    """approval_above for a tenant user's request; operators' requests never wait (they approve)."""
    if tenant is None or as_actor(user).is_operator:
        return []
    return approval_above(tenant=tenant, amounts=amounts)


def approval_request(*, user, tenant, kind: str, title: str, payload: dict, amounts: dict, above: list[str],
                     fields: dict | None = None, secret: str | None = None, request_id=None,
                     request=None) -> ApprovalRequest:
    """Save a waiting request and reserve `amounts` of the tenant's quota under its id. Must run in
    the caller's transaction (with whatever else the request holds, e.g. its vmid). Raises
    QuotaExceeded (a field-map ValidationError) when the quota has no room: nothing is saved then."""
    _kind(kind)  # an unknown kind is a bug: fail before anything is held
    approval = ApprovalRequest(id=request_id or uuid.uuid4(), tenant_id=getattr(tenant, "pk", tenant), kind=kind,
                               title=title[:200], payload=payload, secret=secret or None, amounts=amounts,
                               above=above, created_by=user if getattr(user, "pk", None) else None)
    quotas.quota_reserve(tenant=approval.tenant_id, operation_id=approval.id, amounts=amounts, fields=fields)
    approval.save(force_insert=True)
    audit_log(user=user, action="approval.request", target=approval, result=AuditResult.ACCEPTED, request=request,
              detail={"above": above, "kind": kind}, tenant_id=approval.tenant_id)
    return approval


def _reason(reason: str, *, required: bool) -> str:
    reason = (reason or "").strip()
    if required and not reason:
        raise ValidationError({"reason": ["say why: the requester reads it"]})
    if len(reason) > REASON_MAX:
        raise ValidationError({"reason": [f"at most {REASON_MAX} characters"]})
    return reason


def _locked_waiting(approval) -> ApprovalRequest:
    locked = ApprovalRequest.objects.select_for_update().get(pk=approval.pk)
    if not locked.is_waiting:
        raise ValidationError({"status": [f"this request is {locked.get_status_display().lower()} already"]})
    return locked


def approval_approve(*, approval: ApprovalRequest, user, reason: str = "", request=None):
    """Approve a waiting request: start its operation (as the requester's, for their tenant) with the
    reservation taken at request time. Atomic: the request is locked, so two operators approving at
    once start one operation. Raises NotVisible/Denied (operators only), ValidationError when it is
    not waiting any more (nothing started), QueueUnavailable when the task queue is down."""
    check(user, "approval.decide", approval, request=request)
    reason = _reason(reason, required=False)
    with transaction.atomic():
        locked = _locked_waiting(approval)
        operation = _kind(locked.kind).start(locked)
        Reservation.objects.filter(operation_id=locked.pk, state=ReservationState.RESERVED).update(
            operation_id=operation.pk)
        _decide(locked, user, ApprovalStatus.APPROVED, reason, operation_id=operation.pk)
        audit_log(user=user, action="approval.approve", target=locked, result=AuditResult.SUCCESS, request=request,
                  detail={"operation": str(operation.pk), "reason": reason}, tenant_id=locked.tenant_id)
    return operation


def approval_decline(*, approval: ApprovalRequest, user, reason: str, request=None) -> ApprovalRequest:
    """Decline a waiting request with a reason (required): what it held is released."""
    check(user, "approval.decide", approval, request=request)
    return _close(approval, user, ApprovalStatus.DECLINED, _reason(reason, required=True), "approval.decline", request)


def approval_withdraw(*, approval: ApprovalRequest, user, reason: str = "", request=None) -> ApprovalRequest:
    """The requester (or a tenant admin) takes a waiting request back: what it held is released."""
    check(user, "approval.withdraw", approval, request=request)
    return _close(approval, user, ApprovalStatus.WITHDRAWN, _reason(reason, required=False), "approval.withdraw",
                  request)


def _close(approval, user, status: str, reason: str, action: str, request) -> ApprovalRequest:
    with transaction.atomic():
        locked = _locked_waiting(approval)
        quotas.quota_release(operation_id=locked.pk)
        _kind(locked.kind).release(locked)
        _decide(locked, user, status, reason)
        audit_log(user=user, action=action, target=locked, result=AuditResult.SUCCESS, request=request,
                  detail={"reason": reason}, tenant_id=locked.tenant_id)
    return locked


def _decide(locked: ApprovalRequest, user, status: str, reason: str, operation_id=None) -> None:
    locked.status, locked.reason, locked.operation_id = status, reason, operation_id
    locked.decided_by, locked.decided_at, locked.secret = user, timezone.now(), None
    locked.save(update_fields=["status", "reason", "operation_id", "decided_by", "decided_at", "secret"])


def waiting_ids() -> set:
    """Ids reservations are held under by waiting requests (the quota reconciler leaves them be)."""
    return set(ApprovalRequest.objects.filter(status=ApprovalStatus.WAITING).values_list("pk", flat=True))
