"""Quota requests: a tenant admin asks for new limits with a reason; an operator approves (the
limits are applied through quota_set) or declines with a reason. Each step is audited.

Policy: asking is "quota.request" (tenant admins, operators), deciding "quota.decide" (operators).
Who sees which request: the tenant's admins theirs, operators and auditors all (apps.permissions.scopes)."""

from __future__ import annotations

from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from apps.core.models import AuditResult
from apps.core.services import audit_log

from . import policy
from .choices import QuotaRequestState, QuotaResource
from .models import QuotaRequest
from .quotas import amount_text, label, quota_set

MAX_LIMIT = 2**60  # as the operators' PUT: far above any cluster, a PostgreSQL bigint
MAX_REASON = 2000


def quota_request_list(*, actor):
    """The requests the actor may see, newest first."""
    return policy.visible(actor, QuotaRequest.objects.select_related("tenant", "requested_by", "decided_by"))


def _clean_limits(limits: dict) -> dict[str, int | None]:
    errors, clean = {}, {}
    for resource, value in (limits or {}).items():
        if resource not in QuotaResource.values and not (resource.startswith("gpu:") and 4 < len(resource) <= 64):
            errors[resource] = ["not a quota resource"]
        elif value is not None and (isinstance(value, bool) or not isinstance(value, int)
                                    or not 0 <= value <= MAX_LIMIT):
            errors[resource] = [f"a whole number from 0 to {MAX_LIMIT}, or null for unlimited"]
        else:
            clean[resource] = value
    if errors:
        raise ValidationError(errors)
    if not clean:
        raise ValidationError({"limits": ["ask for at least one new limit"]})
    return clean


def describe_limits(limits: dict) -> str:
    """`vCPUs 32, Memory 64.0 GiB` (how a request reads on a page or in a message)."""
    return ", ".join(f"{label(r)} {amount_text(r, v)}" for r, v in sorted(limits.items()))


def quota_request_create(*, tenant, actor, limits: dict, reason: str, request=None) -> QuotaRequest:
    """Ask for `limits` ({resource: limit or None}) for `tenant`. 404 unseen, 403 (audited) for
    members; ValidationError naming the field (a resource, `limits` or `reason`). Audited."""
    actor = policy.as_actor(actor)
    policy.check(actor, "quota.request", tenant, request=request)
    reason = (reason or "").strip()
    clean = _clean_limits(limits)
    if not reason:
        raise ValidationError({"reason": ["say why the tenant needs it (operators decide on it)"]})
    if len(reason) > MAX_REASON:
        raise ValidationError({"reason": [f"at most {MAX_REASON} characters"]})
    with transaction.atomic():
        quota_request = QuotaRequest.objects.create(tenant=tenant, requested_by=actor.user, limits=clean,
                                                    reason=reason)
        audit_log(user=actor.user, action="quota.request", target=quota_request, result=AuditResult.SUCCESS,
                  request=request, tenant_id=tenant.pk, detail={"limits": clean, "reason": reason[:500]})
    return quota_request


def quota_request_decide(*, quota_request: QuotaRequest, actor, approve: bool, reason: str = "",
                         request=None) -> QuotaRequest:
    """Approve (apply the limits asked for) or decline (a reason is required) a pending request.
    Operators only (403, audited); ValidationError on `state` when it was decided already, on
    `reason` for a decline without one. Both outcomes audited; an approval also as quota.set."""
    actor = policy.as_actor(actor)
    policy.check(actor, "quota.decide", quota_request, request=request)
    reason = (reason or "").strip()
    if not approve and not reason:
        raise ValidationError({"reason": ["say why it is declined (the tenant's admins read it)"]})
    if len(reason) > MAX_REASON:
        raise ValidationError({"reason": [f"at most {MAX_REASON} characters"]})
    with transaction.atomic():
        locked = QuotaRequest.objects.select_for_update().select_related("tenant").get(pk=quota_request.pk)
        if locked.state != QuotaRequestState.PENDING:
            raise ValidationError({"state": [f"this request was {locked.get_state_display().lower()} already"]})
        if approve:
            quota_set(tenant=locked.tenant, limits=locked.limits, user=actor.user, request=request)
        locked.state = QuotaRequestState.APPROVED if approve else QuotaRequestState.DECLINED
        locked.decided_by, locked.decided_at, locked.decision_reason = actor.user, timezone.now(), reason
        locked.save(update_fields=["state", "decided_by", "decided_at", "decision_reason", "updated"])
        audit_log(user=actor.user, action="quota.request_approve" if approve else "quota.request_decline",
                  target=locked, result=AuditResult.SUCCESS, request=request, tenant_id=locked.tenant_id,
                  detail={"limits": locked.limits, "reason": reason[:500]})
    return locked
