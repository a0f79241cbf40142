"""API tokens: issue (the secret is returned once, only its hash is kept) and revoke, both audited."""

from __future__ import annotations

from datetime import timedelta

from django.core.exceptions import ValidationError
from django.db import transaction

from apps.core import live
from apps.core.models import AuditResult
from apps.core.services import audit_log

from . import policy
from .auth import DEFAULT_EXPIRY_DAYS, MAX_EXPIRY_DAYS
from .models import ApiToken, Membership, Tenant


def describe(token: ApiToken) -> str:
    # Not the model: its primary key (the secret's hash) is longer than an audit target id.
    return f"API token {token.name!r} ({token.token_key}…) of {token.user.get_username()}"


def token_tenant(user, tenant: Tenant | None, default: Tenant | None = None) -> Tenant | None:
    """The tenant a new token of `user` is bound to: `tenant` when they belong to it; when omitted,
    `default` (the active tenant) or their first one; operators and auditors may have none."""
    if tenant is not None:
        if not Membership.objects.filter(user=user, tenant=tenant).exists():
            raise ValidationError({"tenant": [f"you are not a member of {tenant}"]})
        return tenant
    actor = policy.actor_for_user(user, default)
    if actor.sees_everything:
        return None
    if actor.tenant is None:
        raise ValidationError({"tenant": ["you belong to no tenant: a token needs one"]})
    return actor.tenant


def issue_token(user, *, name: str, days: int | None = DEFAULT_EXPIRY_DAYS, tenant: Tenant | None = None,
                default_tenant: Tenant | None = None, read_only: bool = False, request=None,
                action: str = "token.create") -> tuple[ApiToken, str]:
    """A new token of `user`; returns (token, secret). The secret is never stored nor shown again."""
    if days is None or not 1 <= int(days) <= MAX_EXPIRY_DAYS:
        raise ValidationError({"expiry_days": [f"between 1 and {MAX_EXPIRY_DAYS} days"]})
    name = (name or "").strip()
    if not name:
        raise ValidationError({"name": ["give the token a name (what uses it)"]})
    tenant = token_tenant(user, tenant, default_tenant)
    with transaction.atomic():
        token, secret = ApiToken.objects.create(user, expiry=timedelta(days=int(days)), name=name[:100],
                                                tenant=tenant, read_only=bool(read_only))
        audit_log(user=user, action=action, target=describe(token), result=AuditResult.SUCCESS, request=request,
                  detail={"name": token.name, "read_only": token.read_only, "expiry_days": int(days),
                          "tenant": tenant.slug if tenant is not None else None},
                  tenant_id=tenant.pk if tenant is not None else None)
    return token, secret


def revoke_token(token: ApiToken, *, by, request=None) -> None:
    """Delete `token`: the next request that carries it is refused (401)."""
    with transaction.atomic():
        audit_log(user=by, action="token.revoke", target=describe(token), result=AuditResult.SUCCESS, request=request,
                  detail={"name": token.name, "owner": token.user.get_username()},
                  tenant_id=token.tenant_id)
        ApiToken.objects.filter(digest=token.digest).delete()
        # Sockets opened with it re-check (and close: LiveConsumer asks token.still_valid()).
        transaction.on_commit(lambda: live.reauth(token.user_id))


def may_revoke(actor, token: ApiToken) -> bool:
    """Own tokens; a tenant admin also their tenant's; operators any."""
    actor = policy.as_actor(actor)
    if token.user_id == actor.user.pk or actor.is_operator:
        return True
    return policy.can(actor, "token.manage", token)
