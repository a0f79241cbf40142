"""Console sessions: who may open one (the policy, with the tenant gate), the ticket from Proxmox,
the session's audit row, and the limits on open sessions. Synchronous (the consumer calls these
through database_sync_to_async)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from apps.core import live
from apps.core.models import AuditResult
from apps.core.services import audit_log
from apps.guests.models import Guest
from apps.nodes.models import Node
from apps.permissions import policy
from apps.permissions.models import Membership
from apps.proxmox import console as gateway
from apps.proxmox.errors import ProxmoxError

from .models import ConsoleKind, ConsoleSession, TenantConsoleSetting

STALE_AFTER = timedelta(minutes=3)  # an open row not seen for this long belonged to a relay that died
SEEN_EVERY = 60  # seconds between refreshes of an open session's row


class ConsoleRefused(Exception):
    """The console cannot open; `code` is the websocket close code the page explains."""

    def __init__(self, code: int, message: str):
        super().__init__(message)
        self.code, self.message = code, message


# Close codes (4000-4999 are the application's): the page shows one state for each.
NOT_LOGGED_IN, DENIED, NOT_FOUND, NOT_RUNNING, TOO_MANY = 4401, 4403, 4404, 4409, 4429
TICKET_REFUSED, CONNECTION_LOST = 4502, 4504


def console_gate(actor, guest) -> str | None:
    """policy gate of guest.console: operators may withhold consoles from a tenant."""
    if actor.is_operator or guest is None or getattr(guest, "tenant_id", None) is None:
        return None
    setting = TenantConsoleSetting.objects.filter(tenant_id=guest.tenant_id).first()
    if setting is not None and not setting.enabled:
        return "consoles are withheld from this tenant"
    return None


def tenant_console_set(*, tenant, enabled: bool, user) -> TenantConsoleSetting:
    """Allow or withhold a tenant's consoles (operators only; audited)."""
    policy.check(user, "tenant.manage", tenant)
    setting, _ = TenantConsoleSetting.objects.update_or_create(tenant=tenant, defaults={"enabled": enabled})
    if not enabled:  # open consoles of the tenant's users re-check themselves and close
        for user_id in Membership.objects.filter(tenant=tenant).values_list("user_id", flat=True):
            transaction.on_commit(lambda user_id=user_id: live.reauth(user_id))
    audit_log(user=user, action="console.allow" if enabled else "console.withhold", target=tenant,
              result=AuditResult.SUCCESS, tenant_id=tenant.pk)
    return setting


@dataclass
class Target:
    kind: str
    cluster: object
    node: str
    vmid: int | None
    label: str
    guest: Guest | None = None
    node_obj: Node | None = None


def resolve_guest(*, user, pk: int) -> Target:
    """The guest `pk` if `user` may open its console; ConsoleRefused before any Proxmox call."""
    guest = policy.visible(user, Guest.objects.select_related("cluster", "node")).filter(pk=pk).first()
    if guest is None:
        raise ConsoleRefused(NOT_FOUND, "no such guest")
    try:
        policy.check(user, "guest.console", guest)
    except policy.Denied as exc:
        raise ConsoleRefused(DENIED, str(exc)) from exc
    if guest.template or guest.node is None:
        raise ConsoleRefused(NOT_FOUND, "this guest has no console")
    if guest.status != "running":
        raise ConsoleRefused(NOT_RUNNING, f"{guest} is {guest.status}")
    return Target(kind=guest.type, cluster=guest.cluster, node=guest.node.name, vmid=guest.vmid,
                  label=f"{'VM' if guest.type == 'qemu' else 'CT'} {guest} on {guest.cluster}", guest=guest)


def resolve_node(*, user, pk: int) -> Target:
    node = policy.visible(user, Node.objects.select_related("cluster")).filter(pk=pk).first()
    if node is None:
        raise ConsoleRefused(NOT_FOUND, "no such node")
    try:
        policy.check(user, "node.console", node)
    except policy.Denied as exc:
        raise ConsoleRefused(DENIED, str(exc)) from exc
    return Target(kind=ConsoleKind.NODE, cluster=node.cluster, node=node.name, vmid=None,
                  label=f"node {node.name} on {node.cluster}", node_obj=node)


@transaction.atomic
def session_open(*, user, target: Target, remote_addr: str | None) -> ConsoleSession:
    """Record the session (the limits are checked first: per user and for the whole portal)."""
    per_user = getattr(settings, "CONSOLE_SESSIONS_PER_USER", 8)
    most = getattr(settings, "CONSOLE_SESSIONS_MAX", 500)
    live = ConsoleSession.objects.filter(ended_at__isnull=True, seen_at__gte=timezone.now() - STALE_AFTER)
    if live.filter(user=user).count() >= per_user:
        raise ConsoleRefused(TOO_MANY, f"you have {per_user} consoles open already")
    if live.count() >= most:
        raise ConsoleRefused(TOO_MANY, "the portal has as many consoles open as it allows")
    guest = target.guest
    session = ConsoleSession.objects.create(
        user=user, username=user.get_username(), tenant_id=getattr(guest, "tenant_id", None), guest=guest,
        node=target.node_obj, target=target.label, kind=target.kind, remote_addr=remote_addr or None)
    audit_log(user=user, action="console.open", target=guest or target.node_obj, result=AuditResult.SUCCESS,
              detail={"session": session.pk, "address": remote_addr or ""}, tenant_id=session.tenant_id)
    return session


def session_seen(*, session_id: int, bytes_in: int, bytes_out: int) -> None:
    ConsoleSession.objects.filter(pk=session_id).update(seen_at=timezone.now(), bytes_in=bytes_in, bytes_out=bytes_out)


@transaction.atomic
def session_close(*, session_id: int, bytes_in: int, bytes_out: int, reason: str) -> None:
    """End the session's row (once) and audit its end with the bytes carried (one transaction)."""
    now = timezone.now()
    updated = ConsoleSession.objects.filter(pk=session_id, ended_at__isnull=True).update(
        ended_at=now, seen_at=now, bytes_in=bytes_in, bytes_out=bytes_out, end_reason=reason[:200])
    if not updated:
        return
    session = ConsoleSession.objects.select_related("user", "guest", "node").get(pk=session_id)
    audit_log(user=session.user, action="console.close", target=session.guest or session.node or session.target,
              result=AuditResult.SUCCESS, tenant_id=session.tenant_id,
              detail={"session": session.pk, "address": session.remote_addr or "", "bytes_in": bytes_in,
                      "bytes_out": bytes_out, "seconds": round((now - session.started_at).total_seconds(), 1),
                      "reason": reason[:200]})


def ticket_for(target: Target):
    """(client, ticket) for the target: vncproxy / termproxy on its node. ConsoleRefused when
    Proxmox says no (stopped guest, refused privilege, unreachable)."""
    client = target.cluster.client()
    try:
        return client, gateway.request_ticket(client, target.kind, target.node, target.vmid)
    except ProxmoxError as exc:
        client.close()
        text = str(exc)
        if "not running" in text:
            raise ConsoleRefused(NOT_RUNNING, text) from exc
        raise ConsoleRefused(TICKET_REFUSED, text or type(exc).__name__) from exc
