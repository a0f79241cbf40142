"""The config change service: the synchronous PUT with the digest, then the operation for the rest."""

from __future__ import annotations

import re

from django.core.exceptions import ValidationError

from apps.operations.clients import client_for
from apps.operations.models import Operation
from apps.operations.services import OperationReporter, operation_create
from apps.proxmox import ProxmoxError, ProxmoxUnreachable, ProxmoxValidationError
from apps.proxmox import guests as pve_guests

from ... import quotas
from ...models import Guest
from ..common import ActionRefused, explain, require_allowed
from .validation import plan_changes


class ConfigConflict(ActionRefused):
    """The digest no longer matches: someone else changed the guest since the form was opened."""


CONFLICT_TEXT = "Someone else changed this guest since you opened the form: reload to see their change."
_DIGEST_RE = re.compile(r"detected modified configuration|digest", re.IGNORECASE)


def guest_config_update(*, guest: Guest, user, changes: dict) -> Operation:
    """Apply `changes` to `guest`: the config PUT (with `changes['digest']` when given) is sent now,
    synchronously like Proxmox; disk resizes (tasks) and the re-read run as operation
    `guest.config`. Guarantees: invalid input raises ValidationError (field map) before anything
    reaches Proxmox; a changed digest raises ConfigConflict with Proxmox's message; any other refusal
    raises ActionRefused; in those cases nothing changed and nothing is queued."""
    require_allowed(user, guest, "guest.config")
    plan = plan_changes(guest, changes)
    if not plan:
        raise ValidationError({"__all__": ["nothing to change: every value is what the guest already has"]})
    digest = (changes.get("digest") or "").strip() or None
    # Growth is reserved before the synchronous PUT (never a lock held across it), freed if it fails.
    held = quotas.hold(guest.tenant_id, *quotas.config_amounts(guest, plan, changes)) if guest.tenant_id else None
    try:
        operation = _apply(guest, user, plan, digest)
    except BaseException:
        quotas.drop(held)
        raise
    quotas.attach(held, operation)
    return operation


def _apply(guest: Guest, user, plan, digest) -> Operation:
    if plan.params or plan.delete:
        client = client_for(guest.cluster_id)
        try:
            pve_guests.update_config(client, guest.ref, digest=digest, delete=plan.delete, **plan.params)
        except ProxmoxValidationError as exc:
            raise ValidationError({k: [f"Proxmox refused it: {v}"] for k, v in exc.errors.items()}
                                  or {"__all__": [f"Proxmox refused it: {exc}"]}) from exc
        except ProxmoxError as exc:
            if digest and _DIGEST_RE.search(exc.message):
                raise ConfigConflict(f"{CONFLICT_TEXT} Proxmox said: {exc.message}",
                                     proxmox_message=exc.message) from exc
            raise ActionRefused(explain("change", guest, exc), proxmox_message=exc.message,
                                status=502 if isinstance(exc, ProxmoxUnreachable) else 409) from exc
        finally:
            client.close()
        digest = None  # the PUT changed the digest; the resizes follow our own change
    operation = operation_create(
        kind="guest.config", user=user, task_name="guests.guest_config", target=guest, cluster_id=guest.cluster_id,
        title=f"Change {guest.kind} {guest}",
        kwargs={"guest_id": guest.pk, "resizes": plan.resizes, "digest": digest,
                "saved": bool(plan.params or plan.delete)})
    if plan.params or plan.delete:
        OperationReporter(operation).event("Configuration saved in Proxmox: " + "; ".join(plan.summary), progress=10)
    return operation
