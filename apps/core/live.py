"""Live updates: push rendered fragments (or JSON data) to Channels groups over Redis.

Group names are `<prefix>-<key>` (`cluster-3`, `operation-<uuid>`, `tenant-2`). Each app
registers, in its AppConfig.ready, who may subscribe to its prefix:

    live.register_group("cluster", lambda user, key: cluster_visible(user=user, pk=key))

The browser subscribes with `/ws/live/?groups=cluster-3,operation-...` (base.html does it for
pages that set `live_groups`); the consumer joins only the groups whose check passes.
"""

from __future__ import annotations

import asyncio
import logging
import re
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer

logger = logging.getLogger(__name__)

GroupCheck = Callable[[Any, str], bool]
_checks: dict[str, GroupCheck] = {}
# Channels allows ASCII alphanumerics, hyphen, underscore, period, under 100 characters.
GROUP_RE = re.compile(r"^([a-z][a-z0-9_]*)-([A-Za-z0-9_.-]{1,80})$")
MESSAGE_TYPE = "live.message"


def register_group(prefix: str, check: GroupCheck) -> None:
    """Let users subscribe to `<prefix>-<key>` when `check(user, key)` is true."""
    if not re.fullmatch(r"[a-z][a-z0-9_]*", prefix):
        raise ValueError(f"prefix: lowercase letters, digits and _ only, got {prefix!r}")
    _checks[prefix] = check


# Presence: apps that want to know who watches their groups (e.g. nodes syncs faster while a
# cluster page is open) register fn(groups, channel_name, present); the consumer calls it on
# join, every PRESENCE_REFRESH seconds while connected, and on leave.
PRESENCE_REFRESH = 10.0
_presence: dict[str, Callable[[list[str], str, bool], None]] = {}


def register_presence(prefix: str, fn: Callable[[list[str], str, bool], None]) -> None:
    _presence[prefix] = fn


def presence(groups: list[str], channel_name: str, present: bool) -> None:
    """Tell each prefix's presence hook which of its groups `channel_name` watches (sync code)."""
    by_prefix: dict[str, list[str]] = {}
    for group in groups:
        by_prefix.setdefault(group.split("-", 1)[0], []).append(group)
    for prefix, members in by_prefix.items():
        if prefix in _presence:
            try:
                _presence[prefix](members, channel_name, present)
            except Exception:  # presence is advisory; never break the socket for it
                logger.exception("presence hook for %s failed", prefix)


# Audience: the policy (apps.permissions) maps the groups a page names to the ones its user should
# join (a tenant user's page listens to `tenant-<id>`, not `cluster-<id>`); identity without it.
_audience: list[Callable[[Any, list[str]], list[str]]] = []


def register_audience(fn: Callable[[Any, list[str]], list[str]]) -> None:
    _audience[:] = [fn]


def audience(user, groups: list[str]) -> list[str]:
    """The groups `user`'s page should subscribe to instead of `groups` (base.html asks this)."""
    groups = list(groups or [])
    return _audience[0](user, groups) if _audience else groups


def registered_prefixes() -> list[str]:
    return sorted(_checks)


def can_subscribe(user, group: str) -> bool:
    """True when `group` is well formed, its prefix is registered and its check allows `user`.

    Runs database queries (call it from sync code, or via database_sync_to_async)."""
    if user is None or not user.is_authenticated or not user.is_active:
        return False
    match = GROUP_RE.match(group)
    if not match or match.group(1) not in _checks:
        return False
    try:
        return bool(_checks[match.group(1)](user, match.group(2)))
    except Exception:  # a failing check denies; it must never open a group
        logger.exception("live group check failed for %s", group)
        return False


def own_user_group(user, key: str) -> bool:
    """`user-<id>`: a user's own notifications."""
    return str(user.pk) == key


# Access changes (a membership removed, a token revoked): every socket of the user re-checks its
# groups. Each LiveConsumer listens on its user's `access-<user id>` group for this message.
REAUTH_TYPE = "live.reauth"


def access_group(user_id) -> str:
    return f"access-{user_id}"


def reauth(user_id) -> bool:
    """Make every open socket of user `user_id` re-check its subscriptions (best effort)."""
    try:
        _run_sync(get_channel_layer().group_send(access_group(user_id), {"type": REAUTH_TYPE}))
    except Exception:
        logger.exception("reauth of user %s failed", user_id)
        return False
    return True


def _message(html: str | None, data: Any) -> dict:
    return {"type": MESSAGE_TYPE, "html": html, "data": data}


async def _await(coro):
    return await coro


def _run_sync(coro) -> None:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        async_to_sync(_await)(coro)  # the usual case: plain sync code (views, Celery tasks)
        return
    # Sync code running under an event loop (e.g. inside a sync callback of async code):
    # AsyncToSync refuses that thread, so send from a short-lived thread with its own loop.
    with ThreadPoolExecutor(max_workers=1) as pool:
        pool.submit(asyncio.run, coro).result()


def push(group: str, html: str | None = None, data: Any = None) -> bool:
    """Send an HTML fragment (hx-swap-oob) and/or JSON-able data to every subscriber of `group`.

    Best effort: returns False and logs when Redis is unreachable. Callers save their state first
    (the database is the source of truth; a reconnecting page re-renders from it)."""
    try:
        _run_sync(get_channel_layer().group_send(group, _message(html, data)))
    except Exception:
        logger.exception("live push to %s failed", group)
        return False
    return True


async def apush(group: str, html: str | None = None, data: Any = None) -> bool:
    """`push` for async code (consumers, async views)."""
    try:
        await get_channel_layer().group_send(group, _message(html, data))
    except Exception:
        logger.exception("live push to %s failed", group)
        return False
    return True
