"""Inventory sync: one cycle per cluster, a constant number of Proxmox calls, handlers per app.

A cycle reads three lists (GET /cluster/resources, /cluster/status, /cluster/ha/status/current),
whatever the number of nodes or guests, the last two at the idle pace while nothing they report may
have changed (see fetch_snapshot), and hands the snapshot to every registered handler.
Each app registers its handler in AppConfig.ready:

    from apps.nodes.sync import register_handler
    register_handler("guests", sync_guests)     # fn(cluster, snapshot) -> list of changed objects

A handler diffs the snapshot against its own tables, writes only what changed (in bulk), pushes
the changed rows to `cluster-<id>` when someone watches, and returns what changed. Each handler
runs in its own transaction: one that fails is rolled back and logged, the others still run.

Volatile figures (cpu, memory, disk use, uptime) change on every Proxmox sample. Rewriting them
each cycle would make a cycle where nothing happened write every row, so nodes stores them only
when they move beyond a threshold (USAGE_THRESHOLD of the maximum, BOOT_TOLERANCE for boot time):
bars are at most a few percent behind, and a quiet cluster costs no database writes.
"""

from __future__ import annotations

import inspect
import json
import logging
import time
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any, Callable

from django.conf import settings
from django.db import transaction
from django.template.loader import render_to_string
from django.utils import timezone
from redis.exceptions import RedisError

from apps.core import live
from apps.core.rows import sync_rows
from apps.proxmox import cluster as pve_cluster
from apps.proxmox.errors import ProxmoxAuthError, ProxmoxError, ProxmoxPermissionError

from . import presence
from .versions import enqueue_versions, versions_due
from .choices import ClusterStatus, NodeStatus
from .models import Cluster, Node

logger = logging.getLogger(__name__)

LOCK_TIMEOUT = 30  # a dead worker's lock expires after this; a live holder renews it (presence.locked)
LOCK_MAX_HOLD = 300  # a cycle never takes this long; past it the lock is no longer renewed
MAX_BACKOFF = 300.0
USAGE_THRESHOLD = 0.02  # write cpu/mem/disk when they move by 2 % of the maximum
BOOT_TOLERANCE = 120.0  # seconds; boot time recomputed from uptime jitters by the sample age


@dataclass(frozen=True)
class Snapshot:
    """What one cycle read from Proxmox. `ha_available` is False when the HA endpoint is absent."""

    resources: list[dict]
    status: list[dict]
    ha_status: list[dict]
    fetched_at: datetime
    ha_available: bool = True
    watchers: int = 0  # open pages watching the cluster (run_cycle sets it): handlers that read
    # more from Proxmox (storage content, GPU inventory, backup jobs) do it only when someone looks

    def of_type(self, *types: str) -> list[dict]:
        return [item for item in self.resources if item.get("type") in types]

    @property
    def nodes(self) -> list[dict]:
        return self.of_type("node")

    @property
    def guests(self) -> list[dict]:
        return self.of_type("qemu", "lxc")

    @property
    def storages(self) -> list[dict]:
        return self.of_type("storage")


@dataclass
class CycleResult:
    cluster_id: int
    ok: bool
    skipped: bool = False  # another cycle holds the lock
    error: str = ""
    duration: float = 0.0
    calls: dict[str, int] = field(default_factory=dict)
    changed: dict[str, int] = field(default_factory=dict)  # handler -> objects changed
    watchers: int = 0


Handler = Callable[..., Any]
_handlers: dict[str, Handler] = {}


def register_handler(name: str, fn: Handler) -> None:
    """Add (or replace) the handler `name`; handlers run in registration order (app order).

    fn(cluster, snapshot) is preferred; fn(cluster, resources, status, ha_status) is accepted too.
    """
    params = [p for p in inspect.signature(fn).parameters.values()
              if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    fn._sync_unpacked = len(params) >= 4  # type: ignore[attr-defined]
    _handlers[name] = fn


def registered_handlers() -> list[str]:
    return list(_handlers)


def _call_handler(fn: Handler, cluster: Cluster, snapshot: Snapshot):
    if getattr(fn, "_sync_unpacked", False):
        return fn(cluster, snapshot.resources, snapshot.status, snapshot.ha_status)
    return fn(cluster, snapshot)


def _count(changed) -> int:
    if changed is None:
        return 0
    if isinstance(changed, bool):
        return int(changed)
    if isinstance(changed, int):
        return changed
    if isinstance(changed, dict):
        return sum(_count(v) for v in changed.values())
    try:
        return len(changed)
    except TypeError:
        return 1


# HA service states that stay put until someone asks otherwise; any other (fence, recovery,
# migrate, starting, error...) means HA is at work and its status must be read every cycle.
SETTLED_HA_STATES = {"", "started", "stopped", "disabled", "ignored"}
SLOW_READS = ("GET /cluster/status", "GET /cluster/ha/status/current")


def _settled_signature(resources: list[dict]) -> str | None:
    """What /cluster/status and /cluster/ha/status/current report that /cluster/resources shows too
    (each node's state, each HA guest's state), or None when something there is unsettled: a node
    not online (powered off, or cut off from the answering node's corosync partition: Proxmox lists
    it `offline` then, as pvesim does), an HA service not in a resting state."""
    nodes, guests = [], []
    for item in resources:
        if item.get("type") == "node":
            if item.get("status") != "online":
                return None
            nodes.append(f"{item.get('node') or item.get('id')}={item.get('hastate', '')}")  # LRM: maintenance...
        elif item.get("hastate"):
            if item["hastate"] not in SETTLED_HA_STATES:
                return None
            guests.append(f"{item.get('id')}={item['hastate']}@{item.get('node')}")
    return "|".join(sorted(nodes)) + "#" + "|".join(sorted(guests))


def _ha_services_shown(resources: list[dict], ha_status: list | None) -> bool:
    """Whether /cluster/resources carries the HA state of every service the kept HA status lists
    (Proxmox sends `hastate` for each; a schema-minimal answer may leave it out, and then only the
    HA status itself can tell a failure: it is read every cycle)."""
    sids = {item.get("sid") for item in ha_status or [] if item.get("type") == "service" and item.get("sid")}
    if not sids:
        return True
    prefix = {"qemu": "vm", "lxc": "ct"}
    shown = {f"{prefix[item['type']]}:{item.get('vmid')}" for item in resources
             if item.get("type") in prefix and item.get("hastate")}
    return sids <= shown


def _ha_operation_running(cluster_id: int) -> bool:
    from apps.operations.models import Operation

    return Operation.objects.filter(cluster_id=cluster_id, kind__startswith="ha.",
                                    status__in=("pending", "running")).exists()


def _slow_reads_kept(cluster: Cluster | None, signature: str | None, resources: list[dict]) -> dict | None:
    """The last /cluster/status and HA status of `cluster`, when they may be reused: read less than
    the idle interval ago and after the last `slow_reads_stale` mark, with the same settled
    signature, every HA service's state shown in /cluster/resources, and no HA operation running."""
    if cluster is None or signature is None or _ha_operation_running(cluster.pk):
        return None
    try:
        raw, stale = presence.client().mget([presence.key("slow-reads", cluster.pk),
                                             presence.key("slow-reads-stale", cluster.pk)])
        kept = json.loads(raw) if raw else None
        stale_at = float(stale) if stale else 0.0
    except (RedisError, ValueError):  # Redis down or an unreadable value: read them
        return None
    if not kept or kept.get("signature") != signature or float(kept.get("read_at") or 0) <= stale_at:
        return None
    return kept if _ha_services_shown(resources, kept.get("ha_status")) else None


def _keep_slow_reads(cluster: Cluster, signature: str | None, status, ha_status, read_at: float) -> None:
    try:
        if signature is None:
            presence.client().delete(presence.key("slow-reads", cluster.pk))
            return
        presence.client().set(presence.key("slow-reads", cluster.pk), json.dumps(
            {"signature": signature, "status": status, "ha_status": ha_status, "read_at": read_at}),
            ex=max(int(cluster.interval_idle), 1))
    except (RedisError, TypeError, ValueError):  # best effort: the next cycle reads them again
        logger.debug("could not keep the slow reads of cluster %s", cluster.pk, exc_info=True)


def slow_reads_stale(cluster_id: int) -> None:
    """Make the next cycle of `cluster_id` read /cluster/status and the HA status again, whatever
    /cluster/resources shows (an operation changed what only they report, e.g. an HA option).
    Reads that started before this call do not count as fresh, even if kept after it."""
    try:
        presence.client().set(presence.key("slow-reads-stale", cluster_id), repr(time.time()),
                              ex=int(max(settings.SYNC_INTERVAL_IDLE, 1)) * 2)
    except RedisError:  # without Redis nothing is kept either: the next cycle reads them anyway
        logger.debug("could not mark the slow reads of cluster %s stale", cluster_id, exc_info=True)


def fetch_snapshot(client, calls: dict[str, int] | None = None, cluster: Cluster | None = None, *,
                   fresh: bool = False) -> Snapshot:
    """The reads of a cycle, counted into `calls` ("GET /cluster/resources": 1, ...) even when they
    fail. A cluster without the HA endpoint (501) or the right to read it gives an empty HA list.

    Given the cluster, /cluster/status and /cluster/ha/status/current are read at the idle pace
    only (their last answers kept in Redis for the idle interval), unless /cluster/resources shows
    that what they report may have changed: a node or HA guest state differs from the last read, a
    node is not online (Proxmox lists a node outside the answering node's corosync partition as
    offline, so a partition shows here too), an HA service is not at rest, or an HA operation is
    running; `fresh` (an operation's end) reads them in any case. So a watched, quiet cluster costs
    one call per cycle, and an HA failure is read in the cycle that shows it."""
    calls = {} if calls is None else calls
    calls["GET /cluster/resources"] = calls.get("GET /cluster/resources", 0) + 1
    resources = pve_cluster.resources(client)
    pve_cluster.complete_resources(client, resources, calls)  # no call unless Proxmox left fields out
    signature = _settled_signature(resources)
    kept = None if fresh else _slow_reads_kept(cluster, signature, resources)
    if kept is not None:
        status, ha_status = kept["status"], kept["ha_status"]
    else:
        read_at = time.time()
        status_label, ha_label = SLOW_READS
        calls[status_label] = calls.get(status_label, 0) + 1
        status = pve_cluster.status(client)
        calls[ha_label] = calls.get(ha_label, 0) + 1
        ha_status = pve_cluster.ha_status(client)
        if cluster is not None:
            _keep_slow_reads(cluster, signature, status, ha_status, read_at)
    return Snapshot(resources=resources, status=status, ha_status=ha_status or [],
                    fetched_at=timezone.now(), ha_available=ha_status is not None)


def backoff_delay(cluster: Cluster, failures: int) -> float:
    """Retry after active interval x 2^failures, capped at MAX_BACKOFF."""
    return min(cluster.interval_active * (2 ** min(failures, 10)), MAX_BACKOFF)


def run_cycle(cluster_id: int, *, fresh: bool = False, wait: float = 0.0) -> CycleResult | None:
    """One sync cycle of one cluster, never two at once for the same cluster (Redis lock).

    Returns None when the cluster no longer exists, a skipped result when another cycle runs.
    On a Proxmox failure the cluster is marked unreachable/auth_failed with the reason, its data is
    kept, and the next attempt is backed off; handlers are not called.

    `fresh` reads /cluster/status and the HA status whatever /cluster/resources shows (see
    fetch_snapshot); `wait` is how long to wait for a cycle already running instead of leaving
    the work to the re-run it schedules (an operation's end wants its own reads: refresh_now).
    """
    from .services import cluster_client

    if fresh:  # also makes the re-run fresh when another cycle holds the lock past `wait`
        slow_reads_stale(cluster_id)
    with presence.locked("sync", cluster_id, LOCK_TIMEOUT, wait=wait, max_hold=LOCK_MAX_HOLD) as held:
        if not held:
            # Asked for while a cycle runs: the running cycle schedules another one right after it.
            presence.mark_queued("rerun", cluster_id, LOCK_MAX_HOLD)
            return CycleResult(cluster_id=cluster_id, ok=False, skipped=True)
        cluster = Cluster.objects.filter(pk=cluster_id).first()
        if cluster is None:
            return None
        started = time.monotonic()
        result = CycleResult(cluster_id=cluster_id, ok=True)
        try:
            with cluster_client(cluster) as client:
                snapshot = fetch_snapshot(client, result.calls, cluster, fresh=fresh)
        except ProxmoxError as exc:
            result.ok, result.error = False, str(exc)
            status = ClusterStatus.AUTH_FAILED if isinstance(exc, (ProxmoxAuthError, ProxmoxPermissionError)) \
                else ClusterStatus.UNREACHABLE
        result.watchers = presence.watcher_count(cluster.live_group)
        if result.ok:
            snapshot = replace(snapshot, watchers=result.watchers)
            for name, fn in list(_handlers.items()):
                try:
                    with transaction.atomic():
                        result.changed[name] = _count(_call_handler(fn, cluster, snapshot))
                except Exception:  # one broken handler must not stop the others
                    logger.exception("sync handler %s failed for cluster %s", name, cluster.name)
                    result.changed[name] = 0
        result.duration = time.monotonic() - started
        _finish(cluster, result, None if result.ok else status)
        presence.record_cycle(cluster_id, calls=result.calls, rows=sum(result.changed.values()), ok=result.ok)
        return result


OPERATION_REFRESH_WAIT = 30.0  # seconds an operation's end waits for a cycle already running


def refresh_now(cluster_id: int | None, *, fresh: bool = True, wait: float = OPERATION_REFRESH_WAIT
                ) -> CycleResult | None:
    """The end of an operation: one cycle of its cluster now, in the caller (not at the next
    interval), so what the operation changed is saved and pushed to the open pages when it ends.
    `fresh` (default) reads /cluster/status and the HA status too (HA options, quorum...). A cycle
    already running is waited for (it may have read before the change). Never raises: a failure is
    logged and left to the next cycle (the operation itself succeeded)."""
    if cluster_id is None:
        return None
    try:
        return run_cycle(cluster_id, fresh=fresh, wait=wait)
    except Exception:
        logger.warning("refresh of cluster %s after an operation failed", cluster_id, exc_info=True)
        return None


def refresh_handlers_now(cluster_id: int | None, names: tuple[str, ...], *, wait: float = OPERATION_REFRESH_WAIT
                         ) -> CycleResult | None:
    """A targeted refresh for an operation's end, cheap at any number of guests: the node list
    (/cluster/resources?type=node), /cluster/status and the HA status read now and handed to the
    handlers `names` only (e.g. ("ha",) after an HA operation: the HA page shows it when the
    operation ends; the guests' rows follow at the next cycle, which reads the cluster and HA
    status again: slow_reads_stale). Under the cluster's sync lock (waits up to `wait` seconds),
    so a handler never runs twice at once. Never raises; returns None when not done."""
    from .services import cluster_client

    if cluster_id is None:
        return None
    try:
        with presence.locked("sync", cluster_id, LOCK_TIMEOUT, wait=wait, max_hold=LOCK_MAX_HOLD) as held:
            cluster = Cluster.objects.filter(pk=cluster_id).first()
            if not held or cluster is None:
                slow_reads_stale(cluster_id)
                return None
            result = CycleResult(cluster_id=cluster_id, ok=True)
            started = time.monotonic()
            with cluster_client(cluster) as client:
                result.calls["GET /cluster/resources"] = 1
                nodes = pve_cluster.resources(client, type="node")
                pve_cluster.complete_resources(client, nodes, result.calls)
                result.calls["GET /cluster/status"] = 1
                status = pve_cluster.status(client)
                result.calls["GET /cluster/ha/status/current"] = 1
                ha_status = pve_cluster.ha_status(client)
            snapshot = Snapshot(resources=nodes, status=status, ha_status=ha_status or [], fetched_at=timezone.now(),
                                ha_available=ha_status is not None, watchers=presence.watcher_count(cluster.live_group))
            slow_reads_stale(cluster_id)  # the kept reads are older than these: the next cycle reads again
            for name in names:
                fn = _handlers.get(name)
                if fn is None:
                    continue
                try:
                    with transaction.atomic():
                        result.changed[name] = _count(_call_handler(fn, cluster, snapshot))
                except Exception:
                    logger.exception("sync handler %s failed for cluster %s", name, cluster.name)
                    result.changed[name] = 0
            result.duration = time.monotonic() - started
            presence.record_cycle(cluster_id, calls=result.calls, rows=sum(result.changed.values()), ok=True)
            return result
    except Exception:
        logger.warning("refresh of cluster %s after an operation failed", cluster_id, exc_info=True)
        slow_reads_stale(cluster_id)
        return None


def _finish(cluster: Cluster, result: CycleResult, failed_status: str | None) -> None:
    """Bookkeeping on the cluster row: one UPDATE per cycle; pushes the card when the state changed."""
    now = timezone.now()
    previous = (cluster.status, cluster.last_error)
    if result.ok:
        interval = cluster.interval_active if result.watchers else cluster.interval_idle
        if presence.take_queued("rerun", cluster.pk):
            interval = 0
        values = dict(status=ClusterStatus.OK, last_error="", failures=0, last_sync_at=now, last_attempt_at=now,
                      last_sync_duration=result.duration, next_sync_at=now + timedelta(seconds=interval))
    else:
        failures = cluster.failures + 1
        values = dict(status=failed_status, last_error=result.error[:2000], failures=failures, last_attempt_at=now,
                      next_sync_at=now + timedelta(seconds=backoff_delay(cluster, failures)))
        logger.warning("cluster %s sync failed (%s): %s", cluster.name, failed_status, result.error)
    Cluster.objects.filter(pk=cluster.pk).update(**values)
    for name, value in values.items():
        setattr(cluster, name, value)
    if result.watchers and (previous != (cluster.status, cluster.last_error)):
        push_cluster(cluster)
    elif result.watchers and result.ok:
        push_sync_age(cluster)  # nothing changed, but watchers should see the data is fresh


# -- the nodes handler -------------------------------------------------------------------------

def _moved(old, new, maximum) -> bool:
    if not maximum:
        return old != new
    if bool(old) != bool(new):  # from nothing to something (or back) always shows, however small
        return True
    return abs((new or 0) - (old or 0)) >= USAGE_THRESHOLD * maximum


def _lrm_state(text: str) -> str:
    """'pve1 (active, watchdog active, Wed ...)' -> 'active'; 'pve1 (idle, ...)' -> 'idle'."""
    if "(" in text:
        inner = text.split("(", 1)[1].rstrip(")")
        return inner.split(",", 1)[0].strip()[:40]
    return text.strip()[:40]


def _desired_node(name: str, res: dict | None, member: dict | None, ha: dict | None, now: datetime) -> dict:
    res = res or {}
    member = member or {}
    status = res.get("status") or (NodeStatus.ONLINE if member.get("online") else NodeStatus.UNKNOWN)
    if status not in NodeStatus.values:
        status = NodeStatus.UNKNOWN
    online = status == NodeStatus.ONLINE
    uptime = res.get("uptime") if online else None
    return {
        "status": status,
        "online": bool(member.get("online", online)),
        "nodeid": member.get("nodeid"),
        "ip": member.get("ip") or None,
        "level": res.get("level") or member.get("level") or "",
        "ha_state": _lrm_state(ha.get("status", "")) if ha else "",
        "cpu": float(res.get("cpu") or 0) if online else 0.0,
        "maxcpu": res.get("maxcpu"),
        "mem": int(res.get("mem") or 0) if online else 0,
        "maxmem": res.get("maxmem"),
        "disk": int(res.get("disk") or 0) if online else 0,
        "maxdisk": res.get("maxdisk"),
        "booted_at": now - timedelta(seconds=uptime) if uptime is not None else None,
    }


def _node_changes(node: Node, want: dict) -> list[str]:
    changed = []
    for name in ("status", "online", "nodeid", "ip", "level", "ha_state"):
        if getattr(node, name) != want[name]:
            changed.append(name)
    for name in ("maxcpu", "maxmem", "maxdisk"):
        if want[name] is not None and getattr(node, name) != want[name]:
            changed.append(name)
    if _moved(node.cpu, want["cpu"], 1.0) or (want["cpu"] == 0) != (node.cpu == 0):
        changed.append("cpu")
    for name, maximum in (("mem", want["maxmem"] or node.maxmem), ("disk", want["maxdisk"] or node.maxdisk)):
        if _moved(getattr(node, name), want[name], maximum) or (want[name] == 0) != (getattr(node, name) == 0):
            changed.append(name)
    old, new = node.booted_at, want["booted_at"]
    if (old is None) != (new is None) or (old and new and abs((new - old).total_seconds()) > BOOT_TOLERANCE):
        changed.append("booted_at")
    return changed


def _cluster_aggregates(snapshot: Snapshot, nodes: list[Node]) -> dict:
    online = [n for n in nodes if n.status == NodeStatus.ONLINE]
    storage_used = storage_total = 0
    seen_shared = set()
    for item in snapshot.storages:
        if item.get("status") != "available":
            continue
        if item.get("shared"):
            if item.get("storage") in seen_shared:
                continue
            seen_shared.add(item.get("storage"))
        storage_used += int(item.get("disk") or 0)
        storage_total += int(item.get("maxdisk") or 0)
    cluster_entry = next((i for i in snapshot.status if i.get("type") == "cluster"), None)
    return {
        # A standalone node has no cluster entry: it is its own quorum. `quorate` is optional: without
        # it, a majority of the nodes online is what quorum means.
        "quorate": bool(online) if not cluster_entry else bool(cluster_entry["quorate"])
        if cluster_entry.get("quorate") is not None else len(online) * 2 > len(nodes),
        "pve_cluster_name": (cluster_entry or {}).get("name", ""),
        "cpu_used": round(sum(n.cpu * n.maxcpu for n in online), 2),
        "cpu_total": sum(n.maxcpu for n in online),
        "mem_used": sum(n.mem for n in online),
        "mem_total": sum(n.maxmem for n in online),
        "storage_used": storage_used,
        "storage_total": storage_total,
    }


def _cluster_changes(cluster: Cluster, want: dict) -> list[str]:
    changed = [f for f in ("quorate", "pve_cluster_name", "cpu_total", "mem_total", "storage_total")
               if getattr(cluster, f) != want[f]]
    for name, maximum in (("cpu_used", want["cpu_total"]), ("mem_used", want["mem_total"]),
                          ("storage_used", want["storage_total"])):
        if _moved(getattr(cluster, name), want[name], maximum):
            changed.append(name)
    return changed


def sync_nodes(cluster: Cluster, snapshot: Snapshot) -> list:
    """Keep Node rows and the cluster's quorum/usage in line with the snapshot; returns changed objects.

    Writes only rows that changed (bulk), deletes nodes that left the cluster, and pushes the
    changed fragments to `cluster-<id>` when someone watches.
    """
    now = snapshot.fetched_at
    resources = {i["node"]: i for i in snapshot.nodes if i.get("node")}
    members = {i["name"]: i for i in snapshot.status if i.get("type") == "node" and i.get("name")}
    lrms = {i.get("node"): i for i in snapshot.ha_status if i.get("type") == "lrm"}
    existing = {n.name: n for n in Node.objects.filter(cluster=cluster)}
    wanted = {name: _desired_node(name, resources.get(name), members.get(name), lrms.get(name), now)
              for name in sorted(set(resources) | set(members))}

    def build(name, want):
        values = {k: v for k, v in want.items() if v is not None or k in ("nodeid", "ip", "booted_at")}
        return Node(cluster=cluster, name=name, **values)

    rows = sync_rows(Node, existing, wanted, build=build, changes=_node_changes, stamp={"updated": now})
    to_create, to_update, gone = rows.created, rows.updated, rows.deleted

    current = [n for n in existing.values() if n not in gone] + to_create
    want = _cluster_aggregates(snapshot, current)
    cluster_fields = _cluster_changes(cluster, want)
    if cluster_fields:
        for f in cluster_fields:
            setattr(cluster, f, want[f])
        Cluster.objects.filter(pk=cluster.pk).update(**{f: want[f] for f in cluster_fields})

    if versions_due(current):  # a node appeared or was read long ago: read off the cycle
        enqueue_versions(cluster.pk)
    changed: list = to_create + to_update + gone + ([cluster] if cluster_fields else [])
    if changed and presence.watcher_count(cluster.live_group):
        transaction.on_commit(lambda: push_cluster(cluster, nodes=to_create + to_update, structure=bool(to_create or gone)))
    return changed


# -- pushing -----------------------------------------------------------------------------------

def render_cluster_fragments(cluster: Cluster, nodes: list[Node] | None = None) -> str:
    """Out-of-band fragments for one cluster: its dashboard card and detail header, plus each given
    node's table row and detail panel. The same partials render the pages."""
    from .selectors import cluster_card_nodes
    from .tables import render_node_row

    parts = [
        render_to_string("nodes/partials/cluster_card.html",
                         {"cluster": cluster, "card_nodes": cluster_card_nodes(cluster=cluster), "oob": True}),
        render_to_string("nodes/partials/cluster_status.html", {"cluster": cluster, "oob": True}),
    ]
    for node in nodes or []:
        node.cluster = cluster
        parts.append(render_node_row(node))
        parts.append(render_to_string("nodes/partials/node_status.html", {"node": node, "oob": True}))
    # The dashboard's figures are per user: tell open dashboards to re-ask for theirs.
    parts.append(render_to_string("dashboard/partials/dashboard_stale.html"))
    return "\n".join(parts)


def push_sync_age(cluster: Cluster) -> None:
    """Only the "synced … ago" stamps of the card and the detail page (a few hundred bytes)."""
    html = render_to_string("nodes/partials/cluster_synced.html", {"cluster": cluster})
    live.push(cluster.live_group, html=html)


def push_cluster(cluster: Cluster, nodes: list[Node] | None = None, structure: bool = False) -> None:
    """Send the cluster's changed fragments to everyone watching it (best effort)."""
    try:
        html = render_cluster_fragments(cluster, nodes)
    except Exception:
        logger.exception("rendering live fragments for cluster %s failed", cluster.pk)
        return
    live.push(cluster.live_group, html=html, data={"cluster": cluster.pk, "structure": structure})
