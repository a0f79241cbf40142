"""Writes for guests: the inventory sync handler, per-guest detail refresh, power actions.

Cost on Proxmox: the inventory comes from the sync cycle's one `/cluster/resources` call. Config,
snapshots and task history (3 calls) are read for one guest only when its page is open, at most
once per DETAILS_INTERVAL, and after an action on it; its usage history comes from the cluster's one
/cluster/metrics/export call a minute (apps.nodes.usage), or from rrddata here before PVE 9.0.
"""

from __future__ import annotations

import logging
import re
import time
from contextlib import contextmanager
from datetime import datetime, timedelta, timezone as dt_timezone

from django.core.cache import cache
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.template.loader import render_to_string
from django.utils import timezone

from apps.core import live
from apps.core.rows import sync_rows
from apps.operations.clients import client_for
from apps.operations.models import Operation
from apps.operations.services import OperationReporter, follow_upid, operation_create
from apps.permissions.policy import check
from apps.proxmox import ProxmoxError, ProxmoxTaskError, borrowed
from apps.proxmox import explain as proxmox_explain
from apps.proxmox import guests as pve_guests
from apps.proxmox import nodes as pve_nodes

from .choices import GuestStatus, GuestType, PowerAction
from .models import Guest, Snapshot

logger = logging.getLogger(__name__)

DETAILS_INTERVAL = 60  # seconds between detail refreshes of a watched guest
RRD_TTL = 3600
_INVENTORY = ["type", "name", "node_id", "status", "template", "lock", "tags", "pool", "tenant_id", "hastate",
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
    from apps.permissions.models import TenantPool

    now = snapshot.fetched_at
    node_ids = dict(Node.objects.filter(cluster=cluster).values_list("name", "id"))
    # A guest in a tenant's pool belongs to that tenant; any other guest is the operators'.
    tenant_of_pool = dict(TenantPool.objects.filter(cluster=cluster).values_list("pool", "tenant_id"))
    wanted = {int(i["vmid"]): i for i in snapshot.guests if i.get("vmid") is not None}
    existing = {g.vmid: g for g in Guest.objects.filter(cluster=cluster).defer("config", "task_history")}
    desired = {vmid: {**_desired_guest(item, node_ids, now), "tenant_id": tenant_of_pool.get(item.get("pool") or "")}
               for vmid, item in wanted.items()}
    rows = sync_rows(Guest, existing, desired,
                     build=lambda vmid, want: Guest(cluster=cluster, vmid=vmid, **want),
                     changes=_changed_fields, stamp={"updated": now})
    changed_rows, gone = rows.changed, rows.deleted
    if (changed_rows or gone) and presence.watcher_count(cluster.live_group):
        transaction.on_commit(lambda: push_guests(cluster.pk, changed_rows, gone=gone))
    return changed_rows + gone


def render_guest_fragments(guests: list[Guest], gone: list[Guest] = ()) -> str:
    """oob fragments for the list rows and the detail header: the partials that render the pages."""
    from apps.nodes.models import Node

    nodes = Node.objects.in_bulk({g.node_id for g in guests if g.node_id})
    for guest in guests:
        guest.node = nodes.get(guest.node_id)  # one query for all; the header shows where it runs now
    parts = [render_to_string("guests/partials/guest_status.html", {"guest": g, "oob": True}) for g in guests]
    # The guest page's power buttons follow the state (pages without them drop it: live-guard).
    parts += [render_to_string("guests/partials/guest_power.html", {"guest": g, "oob": True}) for g in guests]
    parts += [render_to_string("guests/partials/guest_node.html", {"guest": g, "oob": True}) for g in guests]
    parts += [render_to_string("guests/partials/guest_status.html", {"guest": g, "oob": True, "gone": True})
              for g in gone]
    return "".join(parts)


def push_guests(cluster_id: int, guests: list[Guest], gone: list[Guest] = ()) -> None:
    """Operators' pages (`cluster-<id>`) get every row; each tenant's pages (`tenant-<id>`) get
    fragments rendered from its own guests only, never naming another tenant's."""
    live.push(f"cluster-{cluster_id}", html=render_guest_fragments(guests, gone),
              data={"type": "guests", "changed": [g.pk for g in guests], "deleted": [g.vmid for g in gone]})
    for tenant_id in sorted({g.tenant_id for g in [*guests, *gone] if g.tenant_id is not None}):
        mine = [g for g in guests if g.tenant_id == tenant_id]
        mine_gone = [g for g in gone if g.tenant_id == tenant_id]
        live.push(f"tenant-{tenant_id}", html=render_guest_fragments(mine, mine_gone),
                  data={"type": "guests", "changed": [g.pk for g in mine], "deleted": [g.vmid for g in mine_gone]})


# -- per-guest details ---------------------------------------------------------------------------


def rrd_cache_key(guest_id: int) -> str:
    from apps.nodes.usage import series_key

    return series_key("guest", guest_id)


def cached_rrd(guest_id: int) -> dict | None:
    """{"fetched": unix time, "points": [...]} or None before the first refresh: the last hour from
    /cluster/metrics/export (apps.nodes.usage, while the page is open) or, without it, rrddata."""
    return cache.get(rrd_cache_key(guest_id))


def _snapshot_rows(guest: Guest, items: list[dict]) -> list[Snapshot]:
    rows = []
    for item in items:
        snaptime = _int(item.get("snaptime"))
        rows.append(Snapshot(guest=guest, name=item["name"], description=(item.get("description") or "").strip(),
                             parent=item.get("parent") or "", vmstate=bool(_int(item.get("vmstate"))),
                             snaptime=datetime.fromtimestamp(snaptime, tz=dt_timezone.utc) if snaptime else None))
    return rows


def guest_refresh(*, guest: Guest, client=None) -> None:
    """Read config, snapshots and recent tasks of one guest (3 calls; 4 with its usage history
    from rrddata where the cluster has no /cluster/metrics/export, whose one call per cluster
    apps.nodes.usage makes otherwise) and save them; then tell the open guest page. A Proxmox
    error is saved on the row and re-raised."""
    from apps.nodes.usage import export_serves

    ref = guest.ref
    points = None
    try:
        with borrowed(client, lambda: client_for(guest.cluster_id)) as client:
            # the digest is kept beside the config it belongs to: edit forms send it back
            config, digest = pve_guests.config(client, ref)
            snapshots = pve_guests.snapshots(client, ref)
            if not export_serves(guest.cluster_id, guest.node.pve_version if guest.node_id else None):
                points = pve_guests.rrddata(client, ref)
            tasks = pve_nodes.tasks(client, ref.node, vmid=guest.vmid, limit=20)
    except ProxmoxError as exc:
        Guest.objects.filter(pk=guest.pk).update(details_error=str(exc))
        raise
    with transaction.atomic():
        Guest.objects.filter(pk=guest.pk).update(config=config, config_digest=digest, task_history=tasks[:20],
                                                 details_error="", details_synced_at=timezone.now())
        Snapshot.objects.filter(guest=guest).delete()
        Snapshot.objects.bulk_create(_snapshot_rows(guest, snapshots))
    if points is not None:
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
    transaction.on_commit(lambda: task.delay(guest.pk), robust=True)  # best effort: Redis may be away
    return True


def _status_update(guest: Guest, client) -> None:
    """Re-read the guest's live state after an action and save + push it (not waiting for sync)."""
    try:
        current = pve_guests.current(client, guest.ref)
    except ProxmoxError as exc:
        logger.info("status of %s after action failed: %s", guest, exc)
        return
    status = pve_guests.state(current) or guest.status
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
def explain_error(action: str, guest: Guest, exc: ProxmoxError) -> str:
    """`Could not start VM 100 (web1): <reason in plain words>. Proxmox said: <exact message>`
    (the words come from apps.proxmox.explain, the one table)."""
    verb = PowerAction(action).label.lower() if action in PowerAction.values else action
    return proxmox_explain.explain(f"Could not {verb} {guest.kind} {guest}", exc,
                                   node=guest.node.name if guest.node_id else "")


class GuestActionError(ProxmoxError):
    """A Proxmox failure re-worded for the user (message keeps Proxmox's exact text at the end)."""


def _check_action(*, guest: Guest, user, action: str) -> None:
    check(user, "guest.power", guest)  # 404 unseen, 403 (audited) seen but not allowed
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
            check(user, "guest.power", guest)  # outside the savepoint: a denial's audit entry stays
            with transaction.atomic():
                operation = guest_power(guest=guest, user=user, action=action, timeout=timeout)
            results.append({"guest": guest, "operation": operation, "error": ""})
        except ValidationError as exc:
            message = "; ".join(m for msgs in exc.message_dict.values() for m in msgs)
            results.append({"guest": guest, "operation": None, "error": message})
        except PermissionDenied as exc:
            results.append({"guest": guest, "operation": None, "error": str(exc)})
    return results


@contextmanager
def explained(guest: Guest, action: str):
    """A Proxmox refusal inside the block becomes GuestActionError in the user's words (once)."""
    try:
        yield
    except GuestActionError:
        raise
    except ProxmoxError as exc:
        raise GuestActionError(explain_error(action, guest, exc), status=exc.status) from exc


def follow(operation, client, guest: Guest, action: str, upid: str | None, reporter, **kwargs) -> None:
    """Follow the task `upid` of an action on `guest` (None: Proxmox did it synchronously);
    a failed task raises GuestActionError in the user's words."""
    if not upid:
        return
    try:
        follow_upid(operation, client, guest.node.name, upid, reporter=reporter, **kwargs)
    except ProxmoxTaskError as exc:
        raise GuestActionError(explain_error(action, guest, exc), status=exc.status) from exc


def _start_task(client, guest: Guest, action: str, **params) -> str:
    with explained(guest, action):
        return pve_guests.power(client, guest.ref, action, **params)



def run_power(operation, reporter: OperationReporter, *, guest_id: int, action: str, timeout: int | None = None):
    """Worker side of guest_power. Shutdown: a clean shutdown task bounded by `timeout`; if it
    does not finish cleanly, a stop task (the guest is off either way, the events say which)."""
    guest = Guest.objects.select_related("node", "cluster").get(pk=guest_id)
    client = client_for(guest.cluster_id)
    try:
        if action == PowerAction.SHUTDOWN:
            upid = _start_task(client, guest, "shutdown", timeout=timeout, forceStop=False)
            try:
                follow(operation, client, guest, "shutdown", upid, reporter, progress_range=(0, 70))
            except GuestActionError as exc:
                if "not running" in str(exc) or "locked" in str(exc):
                    raise
                reporter.event(f"Clean shutdown did not finish within {timeout} s ({exc.__cause__}); "
                               "stopping it hard", level="warning", progress=70)
                upid = _start_task(client, guest, "stop")
                follow(operation, client, guest, "stop", upid, reporter, progress_range=(70, 100))
        else:
            upid = _start_task(client, guest, action)
            follow(operation, client, guest, action, upid, reporter)
        _status_update(guest, client)
        try:  # config, snapshots and task history changed too: the open page shows them at once
            guest_refresh(guest=guest, client=client)
        except ProxmoxError as exc:
            reporter.event(f"Could not re-read the guest's details: {exc}", level="warning")
        return {"status": guest.status}
    finally:
        client.close()
