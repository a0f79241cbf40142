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


def audit_log(*, user, action: str, target, result: str, request=None, detail: dict | None = None) -> AuditEntry:
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
    return AuditEntry.objects.create(
        user=user,
        username=user.get_username() if user is not None else "",
        action=action,
        target_type=target_type,
        target_id=target_id,
        target_repr=target_repr,
        result=result,
        remote_addr=_client_ip(request),
        detail=_redact(detail or {}),
    )
