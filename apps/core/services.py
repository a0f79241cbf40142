"""Writes owned by core: the audit log."""

from __future__ import annotations

from typing import Any

from django.db import models

from .models import AuditEntry, AuditResult

# Keys whose values never reach the audit log (matched as substrings, case-insensitive).
SECRET_KEYS = ("password", "secret", "token", "key", "ticket", "cookie", "authorization")
REDACTED = "***"


def _redact(value: Any) -> Any:
    if isinstance(value, dict):
        return {
            key: REDACTED if any(word in str(key).lower() for word in SECRET_KEYS) else _redact(item)
            for key, item in value.items()
        }
    if isinstance(value, (list, tuple)):
        return [_redact(item) for item in value]
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    return str(value)


def _client_ip(request) -> str | None:
    # REMOTE_ADDR only: X-Forwarded-For is client-controlled unless a proxy rewrites it.
    if request is None:
        return None
    return request.META.get("REMOTE_ADDR") or None


def _token_of(request) -> str:
    """The API token a request authenticated with, as the audit log names it (blank: a session).
    Duck-typed on knox's `token_key`: core cannot import the permissions app's ApiToken."""
    auth = getattr(request, "auth", None) if request is not None else None
    if auth is None or not getattr(auth, "token_key", None):
        return ""
    return str(auth)[:150]


def _tenant_of(target, request) -> int | None:
    """The tenant an entry belongs to: the target's (a guest of acme), else the actor's active one."""
    tenant_id = getattr(target, "tenant_id", None) if isinstance(target, models.Model) else None
    if tenant_id is None and isinstance(target, models.Model) and target._meta.label_lower == "permissions.tenant":
        tenant_id = target.pk
    if tenant_id is None and request is not None:
        actor = getattr(request, "actor", None)
        try:
            tenant_id = getattr(actor, "tenant_id", None)
        except Exception:  # an audit entry is never refused for want of a tenant
            tenant_id = None
    return tenant_id


def audit_log(*, user, action: str, target, result: str, request=None, detail: dict | None = None,
              tenant_id: int | None = None) -> AuditEntry:
    """Append one audit entry in the caller's transaction.

    `target` is a model instance, or a string naming what was acted on (or None).
    `result` is an AuditResult value (ValueError otherwise). Values under secret-looking keys in
    `detail` (password, token, secret, key...) are replaced by "***" before saving.
    """
    if result not in AuditResult.values:
        raise ValueError(f"result: must be one of {', '.join(AuditResult.values)}, not {result!r}")
    if isinstance(target, models.Model):
        target_type = target._meta.label_lower
        target_id = str(target.pk)
        target_repr = str(target)[:200]
    else:
        target_type, target_id, target_repr = "", "", ("" if target is None else str(target)[:200])
    if user is not None and not user.is_authenticated:
        user = None
    if request is not None:
        request.audit_recorded = True  # RefusedAccessMiddleware: the refusal is audited already
    return AuditEntry.objects.create(
        user=user,
        username=user.get_username() if user is not None else "",
        token=_token_of(request),
        action=action,
        target_type=target_type,
        target_id=target_id,
        target_repr=target_repr,
        result=result,
        remote_addr=_client_ip(request),
        detail=_redact(detail or {}),
        tenant_id=tenant_id if tenant_id is not None else _tenant_of(target, request),
    )
