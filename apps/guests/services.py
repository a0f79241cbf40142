"""Writes for guests: the inventory sync handler, per-guest detail refresh, power actions.

Cost on Proxmox: the inventory comes from the sync cycle's one `/cluster/resources` call. Config,
snapshots, usage history and task history (4 calls) are read for one guest only when its page is
open, at most once per DETAILS_INTERVAL, and after an action on it.
"""

from __future__ import annotations

import logging
import re
import time
from datetime import datetime, timedelta, timezone as dt_timezone

from django.core.cache import cache
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.template.loader import render_to_string
from django.utils import timezone

from apps.core import live
from apps.core.scoping import is_operator
from apps.operations.clients import client_for
from apps.operations.models import Operation
from apps.operations.services import OperationReporter, follow_upid, operation_create
from apps.proxmox import ProxmoxError, ProxmoxTaskError, ProxmoxUnreachable

from .choices import GuestStatus, GuestType, PowerAction
from .models import Guest, Snapshot

logger = logging.getLogger(__name__)

DETAILS_INTERVAL = 60  # seconds between detail refreshes of a watched guest
RRD_TTL = 3600
_INVENTORY = ["type", "name", "node_id", "status", "template", "lock", "tags", "pool", "hastate",
              "maxcpu", "maxmem", "maxdisk"]
_RUNNING = (GuestStatus.RUNNING, GuestStatus.PAUSED, GuestStatus.PRELAUNCH)


def _int(value) -> int:
    try:
        return int(value or 0)
    except (TypeError, ValueError):
        return 0


# -- inventory sync ------------------------------------------------------------------------------


def _desired_guest(item: dict, node_ids: dict[str, int], now: datetime) -> dict:
    status = item.get("status") or GuestStatus.UNKNOWN
    if status not in GuestStatus.values:
        status = GuestStatus.UNKNOWN
    uptime = _int(item.get("uptime")) if status in _RUNNING else 0
    return {
        "type": item["type"], "name": item.get("name") or "", "node_id": node_ids.get(item.get("node")),
        "status": status, "template": bool(_int(item.get("template"))), "lock": item.get("lock") or "",
        "tags": [t for t in re.split(r"[;,\s]+", item.get("tags") or "") if t],
        "pool": item.get("pool") or "", "hastate": item.get("hastate") or "",
        "maxcpu": _int(item.get("maxcpu")), "maxmem": _int(item.get("maxmem")), "maxdisk": _int(item.get("maxdisk")),
        "cpu": float(item.get("cpu") or 0) if status in _RUNNING else 0.0,
        "mem": _int(item.get("mem")) if status in _RUNNING else 0,
        "disk": _int(item.get("disk")),
        # A guest that just started reports uptime 0: it booted now, not "never".
        "booted_at": now - timedelta(seconds=uptime) if status in _RUNNING else None,
    }


def _changed_fields(guest: Guest, want: dict) -> list[str]:
    """Inventory fields that differ, plus volatile ones that moved beyond the nodes thresholds."""
    from apps.nodes.sync import BOOT_TOLERANCE, USAGE_THRESHOLD

    changed = [f for f in _INVENTORY if getattr(guest, f) != want[f]]
    for name, maximum in (("cpu", 1.0), ("mem", want["maxmem"]), ("disk", want["maxdisk"])):
        old, new = getattr(guest, name), want[name]
        moved = abs(new - old) >= USAGE_THRESHOLD * maximum if maximum else old != new
        if moved or (old == 0) != (new == 0):
            changed.append(name)
    old, new = guest.booted_at, want["booted_at"]
    if (old is None) != (new is None) or (old and new and abs((new - old).total_seconds()) > BOOT_TOLERANCE):
        changed.append("booted_at")
    return changed


def guest_sync(cluster, snapshot) -> list[Guest]:
    """Sync handler (apps.nodes.sync registry): make the cluster's Guest rows match the guests of
    /cluster/resources. Bulk-creates new guests, bulk-updates only the changed fields of changed
    ones, bulk-deletes guests that are gone, pushes changed rows to `cluster-<id>` when watched.
    A cycle where only cpu/mem jitter writes nothing. Returns created + updated + deleted guests."""
    from apps.nodes import presence
    from apps.nodes.models import Node

    now = snapshot.fetched_at
    node_ids = dict(Node.objects.filter(cluster=cluster).values_list("name", "id"))
    wanted = {int(i["vmid"]): i for i in snapshot.guests if i.get("vmid") is not None}
    existing = {g.vmid: g for g in Guest.objects.filter(cluster=cluster).defer("config", "task_history")}
    created, updated, fields = [], [], set()
    for vmid, item in wanted.items():
        want = _desired_guest(item, node_ids, now)
        guest = existing.get(vmid)
        if guest is None:
            created.append(Guest(cluster=cluster, vmid=vmid, **want))
            continue
        changed = _changed_fields(guest, want)
        if changed:
            for f in changed:
                setattr(guest, f, want[f])
            guest.updated = now
            updated.append(guest)
            fields.update(changed)
    gone = [g for vmid, g in existing.items() if vmid not in wanted]
    if created:
        Guest.objects.bulk_create(created)
    if updated:
        Guest.objects.bulk_update(updated, sorted(fields | {"updated"}))
    if gone:
        Guest.objects.filter(pk__in=[g.pk for g in gone]).delete()
    changed_rows = created + updated
    if (changed_rows or gone) and presence.watcher_count(cluster.live_group):
        transaction.on_commit(lambda: push_guests(cluster.pk, changed_rows, gone=gone))
    return changed_rows + gone


def render_guest_fragments(guests: list[Guest], gone: list[Guest] = ()) -> str:
    """oob fragments for the list rows and the detail header: the partials that render the pages."""
    parts = [render_to_string("guests/partials/guest_status.html", {"guest": g, "oob": True}) for g in guests]
    parts += [render_to_string("guests/partials/guest_status.html", {"guest": g, "oob": True, "gone": True})
              for g in gone]
    return "".join(parts)


def push_guests(cluster_id: int, guests: list[Guest], gone: list[Guest] = ()) -> None:
    live.push(f"cluster-{cluster_id}", html=render_guest_fragments(guests, gone),
              data={"type": "guests", "changed": [g.pk for g in guests], "deleted": [g.vmid for g in gone]})


# -- per-guest details ---------------------------------------------------------------------------


def rrd_cache_key(guest_id: int) -> str:
    return f"guests:rrd:{guest_id}"


def cached_rrd(guest_id: int) -> dict | None:
    """{"fetched": unix time, "points": [...]} or None before the first refresh."""
    return cache.get(rrd_cache_key(guest_id))


def _snapshot_rows(guest: Guest, items: list[dict]) -> list[Snapshot]:
    rows = []
    for item in items:
        if item.get("name") in (None, "current"):  # "current" is "You are here!", not a snapshot
            continue
        snaptime = _int(item.get("snaptime"))
        rows.append(Snapshot(guest=guest, name=item["name"], description=(item.get("description") or "").strip(),
                             parent=item.get("parent") or "", vmstate=bool(_int(item.get("vmstate"))),
                             snaptime=datetime.fromtimestamp(snaptime, tz=dt_timezone.utc) if snaptime else None))
    return rows


def guest_refresh(*, guest: Guest, client=None) -> None:
    """Read config, snapshots, usage history (hour) and recent tasks of one guest (4 calls) and save
    them; then tell the open guest page. A Proxmox error is saved on the row and re-raised."""
    own = client is None
    client = client or client_for(guest.cluster_id)
    try:
        config = client.get(f"{guest.api_path}/config") or {}
        snapshots = client.get(f"{guest.api_path}/snapshot") or []
        points = client.get(f"{guest.api_path}/rrddata", timeframe="hour", cf="AVERAGE") or []
        tasks = client.get(f"nodes/{guest.node.name}/tasks", vmid=guest.vmid, limit=20, source="all") or []
    except ProxmoxError as exc:
        Guest.objects.filter(pk=guest.pk).update(details_error=str(exc))
        raise
    finally:
        if own:
            client.close()
    digest = config.pop("digest", "") or ""  # kept beside the config it belongs to: edit forms send it back
    with transaction.atomic():
        Guest.objects.filter(pk=guest.pk).update(config=config, config_digest=digest, task_history=tasks[:20],
                                                 details_error="", details_synced_at=timezone.now())
        Snapshot.objects.filter(guest=guest).delete()
        Snapshot.objects.bulk_create(_snapshot_rows(guest, snapshots))
    cache.set(rrd_cache_key(guest.pk), {"fetched": time.time(), "points": points}, RRD_TTL)
    transaction.on_commit(lambda: live.push(
        f"guest-{guest.pk}", html=render_to_string("guests/partials/guest_details_stale.html", {"guest": guest}),
        data={"type": "guest.details", "id": guest.pk}))


def guest_refresh_if_stale(*, guest: Guest) -> bool:
    """Queue guests.guest_refresh unless the details are fresh or a refresh is already queued."""
    from apps.nodes import presence

    from .tasks import guest_refresh as task

    fresh = guest.details_synced_at and (timezone.now() - guest.details_synced_at).total_seconds() < DETAILS_INTERVAL
    if fresh or guest.node_id is None or not presence.mark_queued("guest-details", guest.pk, DETAILS_INTERVAL):
        return False
    transaction.on_commit(lambda: task.delay(guest.pk))
    return True


def _status_update(guest: Guest, client) -> None:
    """Re-read the guest's live state after an action and save + push it (not waiting for sync)."""
    try:
        current = client.get(f"{guest.api_path}/status/current") or {}
    except ProxmoxError as exc:
        logger.info("status of %s after action failed: %s", guest, exc)
        return
    status = current.get("qmpstatus") or current.get("status") or guest.status
    if status not in GuestStatus.values:
        status = GuestStatus.UNKNOWN
    uptime = _int(current.get("uptime"))
    values = {"status": status, "lock": current.get("lock") or "",
              "booted_at": timezone.now() - timedelta(seconds=uptime) if status in _RUNNING else None,
              "updated": timezone.now()}
    Guest.objects.filter(pk=guest.pk).update(**values)
    for key, value in values.items():
        setattr(guest, key, value)
    push_guests(guest.cluster_id, [guest])


# -- power actions -------------------------------------------------------------------------------

_QEMU_ONLY = {PowerAction.RESET}
LOCK_MEANING = {
    "backup": "a backup is running", "clone": "it is being cloned", "create": "it is being created",
    "migrate": "it is being migrated", "rollback": "a snapshot rollback is running",
    "snapshot": "a snapshot is being taken", "snapshot-delete": "a snapshot is being deleted",
    "suspending": "it is being suspended", "suspended": "it is suspended to disk",
    "disk": "a disk operation is running", "mounted": "its volumes are mounted", "destroyed": "it is being destroyed",
}
_EXPLAIN = [
    (re.compile(r"(?:VM|CT) is locked \((?P<lock>[\w-]+)\)"),
     lambda m: f"it is locked ({m['lock']}: {LOCK_MEANING.get(m['lock'], 'another task holds it')})"),
    (re.compile(r"no quorum"), lambda m: "the cluster has no quorum, so Proxmox refuses changes until it is back"),
    (re.compile(r"already running"), lambda m: "it is already running"),
    (re.compile(r"not running"), lambda m: "it is not running"),
    (re.compile(r"it's a template"), lambda m: "it is a template (clone it to get a guest you can start)"),
    (re.compile(r"is paused - cannot shutdown"), lambda m: "it is paused; resume it first or stop it"),
    (re.compile(r"can't lock file"), lambda m: "another task is changing its configuration right now"),
    (re.compile(r"does not exist"), lambda m: "Proxmox no longer has it on that node (moved or deleted)"),
]


def explain_error(action: str, guest: Guest, exc: ProxmoxError) -> str:
    """`Could not start VM 100 (web1): <reason in plain words>. Proxmox said: <exact message>`."""
    text = exc.message or str(exc)
    reason = None
    if isinstance(exc, ProxmoxUnreachable):
        node = guest.node.name if guest.node_id else "its node"
        reason = f"node {node} is offline or unreachable"
    else:
        for pattern, say in _EXPLAIN:
            match = pattern.search(text)
            if match:
                reason = say(match)
                break
    verb = PowerAction(action).label.lower() if action in PowerAction.values else action
    head = f"Could not {verb} {guest.kind} {guest}"
    return f"{head}: {reason}. Proxmox said: {text}" if reason else f"{head}. Proxmox said: {text}"


class GuestActionError(ProxmoxError):
    """A Proxmox failure re-worded for the user (message keeps Proxmox's exact text at the end)."""


def _check_action(*, guest: Guest, user, action: str) -> None:
    if not is_operator(user):
        raise PermissionDenied("only operators may act on guests until tenancy exists")
    if action not in PowerAction.values:
        raise ValidationError({"action": [f"unknown action '{action}'; one of {', '.join(PowerAction.values)}"]})
    if action in _QEMU_ONLY and guest.type == GuestType.LXC:
        raise ValidationError({"action": ["containers cannot be reset; use reboot"]})
    if guest.node_id is None:
        raise ValidationError({"node": [f"the node of {guest} is not known yet; wait for the next sync"]})


def guest_power(*, guest: Guest, user, action: str, timeout: int | None = None) -> Operation:
    """Queue power action `action` on `guest` as an Operation (kind `guest.<action>`); the worker
    calls Proxmox, follows the UPID and re-reads the guest. `shutdown` waits `timeout` seconds
    (default 60) then stops the guest hard. Raises PermissionDenied, or ValidationError (field
    map) for a bad action/timeout; nothing is queued then."""
    _check_action(guest=guest, user=user, action=action)
    if timeout is not None and not (1 <= int(timeout) <= 3600):
        raise ValidationError({"timeout": ["must be between 1 and 3600 seconds"]})
    kwargs = {"guest_id": guest.pk, "action": action}
    if action == PowerAction.SHUTDOWN:
        kwargs["timeout"] = int(timeout or 60)
    return operation_create(kind=f"guest.{action}", user=user, task_name="guests.guest_power", kwargs=kwargs,
                            target=guest, cluster_id=guest.cluster_id,
                            title=f"{PowerAction(action).label} {guest.kind} {guest}")


def guest_bulk_power(*, guests: list[Guest], user, action: str, timeout: int | None = None) -> list[dict]:
    """One operation per guest; a guest that cannot be acted on gets its error instead.
    Returns [{"guest": Guest, "operation": Operation | None, "error": str}] in the given order."""
    results = []
    for guest in guests:
        try:
            with transaction.atomic():
                operation = guest_power(guest=guest, user=user, action=action, timeout=timeout)
            results.append({"guest": guest, "operation": operation, "error": ""})
        except ValidationError as exc:
            message = "; ".join(m for msgs in exc.message_dict.values() for m in msgs)
            results.append({"guest": guest, "operation": None, "error": message})
        except PermissionDenied as exc:
            results.append({"guest": guest, "operation": None, "error": str(exc)})
    return results


def _start_task(client, guest: Guest, action: str, **params) -> str:
    try:
        return client.post(f"{guest.api_path}/status/{action}", **params)
    except ProxmoxError as exc:
        raise GuestActionError(explain_error(action, guest, exc), status=exc.status) from exc


def _follow(operation, client, guest: Guest, action: str, upid: str, reporter, **kwargs) -> None:
    try:
        follow_upid(operation, client, guest.node.name, upid, reporter=reporter, **kwargs)
    except ProxmoxTaskError as exc:
        raise GuestActionError(explain_error(action, guest, exc), status=exc.status) from exc


def run_power(operation, reporter: OperationReporter, *, guest_id: int, action: str, timeout: int | None = None):
    """Worker side of guest_power. Shutdown: a clean shutdown task bounded by `timeout`; if it
    does not finish cleanly, a stop task (the guest is off either way, the events say which)."""
    guest = Guest.objects.select_related("node", "cluster").get(pk=guest_id)
    client = client_for(guest.cluster_id)
    try:
        if action == PowerAction.SHUTDOWN:
            upid = _start_task(client, guest, "shutdown", timeout=timeout, forceStop=False)
            try:
                _follow(operation, client, guest, "shutdown", upid, reporter, progress_range=(0, 70))
            except GuestActionError as exc:
                if "not running" in str(exc) or "locked" in str(exc):
                    raise
                reporter.event(f"Clean shutdown did not finish within {timeout} s ({exc.__cause__}); "
                               "stopping it hard", level="warning", progress=70)
                upid = _start_task(client, guest, "stop")
                _follow(operation, client, guest, "stop", upid, reporter, progress_range=(70, 100))
        else:
            upid = _start_task(client, guest, action)
            _follow(operation, client, guest, action, upid, reporter)
        _status_update(guest, client)
        try:  # config, snapshots and task history changed too: the open page shows them at once
            guest_refresh(guest=guest, client=client)
        except ProxmoxError as exc:
            reporter.event(f"Could not re-read the guest's details: {exc}", level="warning")
        return {"status": guest.status}
    finally:
        client.close()
