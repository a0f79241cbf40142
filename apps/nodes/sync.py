"""Inventory sync: one cycle per cluster, a constant number of Proxmox calls, handlers per app.

A cycle reads three lists (GET /cluster/resources, /cluster/status, /cluster/ha/status/current),
whatever the number of nodes or guests, and hands the snapshot to every registered handler.
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
import logging
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Callable

from django.db import transaction
from django.template.loader import render_to_string
from django.utils import timezone

from apps.core import live
from apps.proxmox.errors import ProxmoxAuthError, ProxmoxError, ProxmoxNotFound, ProxmoxPermissionError

from . import presence
from .choices import ClusterStatus, NodeStatus
from .models import Cluster, Node

logger = logging.getLogger(__name__)

LOCK_TIMEOUT = 300  # a cycle never takes this long; a dead worker's lock expires after it
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


READS = (("resources", "cluster/resources"), ("status", "cluster/status"), ("ha_status", "cluster/ha/status/current"))


def fetch_snapshot(client, calls: dict[str, int] | None = None) -> Snapshot:
    """The three reads of a cycle, counted into `calls` ("GET /cluster/resources": 1, ...) even when
    they fail. A cluster without the HA endpoint (501) or the right to read it gives an empty HA list."""
    calls = {} if calls is None else calls
    data: dict[str, list] = {}
    ha_available = True
    for name, path in READS:
        calls[f"GET /{path}"] = calls.get(f"GET /{path}", 0) + 1
        try:
            data[name] = client.get(path) or []
        except (ProxmoxNotFound, ProxmoxPermissionError):
            if name != "ha_status":
                raise
            data[name], ha_available = [], False
    return Snapshot(resources=data["resources"], status=data["status"], ha_status=data["ha_status"],
                    fetched_at=timezone.now(), ha_available=ha_available)


def backoff_delay(cluster: Cluster, failures: int) -> float:
    """Retry after active interval x 2^failures, capped at MAX_BACKOFF."""
    return min(cluster.interval_active * (2 ** min(failures, 10)), MAX_BACKOFF)


def run_cycle(cluster_id: int) -> CycleResult | None:
    """One sync cycle of one cluster, never two at once for the same cluster (Redis lock).

    Returns None when the cluster no longer exists, a skipped result when another cycle runs.
    On a Proxmox failure the cluster is marked unreachable/auth_failed with the reason, its data is
    kept, and the next attempt is backed off; handlers are not called.
    """
    from .services import cluster_client

    lock = presence.lock("sync", cluster_id, LOCK_TIMEOUT)
    if not lock.acquire():
        # Asked for while a cycle runs: the running cycle schedules another one right after it.
        presence.mark_queued("rerun", cluster_id, LOCK_TIMEOUT)
        return CycleResult(cluster_id=cluster_id, ok=False, skipped=True)
    try:
        cluster = Cluster.objects.filter(pk=cluster_id).first()
        if cluster is None:
            return None
        started = time.monotonic()
        result = CycleResult(cluster_id=cluster_id, ok=True)
        try:
            with cluster_client(cluster) as client:
                snapshot = fetch_snapshot(client, result.calls)
        except ProxmoxError as exc:
            result.ok, result.error = False, str(exc)
            status = ClusterStatus.AUTH_FAILED if isinstance(exc, (ProxmoxAuthError, ProxmoxPermissionError)) \
                else ClusterStatus.UNREACHABLE
        result.watchers = presence.watcher_count(cluster.live_group)
        if result.ok:
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
    finally:
        try:
            lock.release()
        except Exception:  # expired while we ran: nothing to release
            pass


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
        # A standalone node has no cluster entry: it is its own quorum.
        "quorate": bool(cluster_entry.get("quorate")) if cluster_entry else bool(online),
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
    to_create, to_update, fields = [], [], set()
    for name in sorted(set(resources) | set(members)):
        want = _desired_node(name, resources.get(name), members.get(name), lrms.get(name), now)
        node = existing.get(name)
        if node is None:
            values = {k: v for k, v in want.items() if v is not None or k in ("nodeid", "ip", "booted_at")}
            to_create.append(Node(cluster=cluster, name=name, **values))
            continue
        changed = _node_changes(node, want)
        if changed:
            for f in changed:
                setattr(node, f, want[f])
            node.updated = now
            to_update.append(node)
            fields.update(changed)
    gone = [n for name, n in existing.items() if name not in resources and name not in members]
    if to_create:
        Node.objects.bulk_create(to_create)
    if to_update:
        Node.objects.bulk_update(to_update, sorted(fields | {"updated"}))
    if gone:
        Node.objects.filter(pk__in=[n.pk for n in gone]).delete()

    current = [n for n in existing.values() if n not in gone] + to_create
    want = _cluster_aggregates(snapshot, current)
    cluster_fields = _cluster_changes(cluster, want)
    if cluster_fields:
        for f in cluster_fields:
            setattr(cluster, f, want[f])
        Cluster.objects.filter(pk=cluster.pk).update(**{f: want[f] for f in cluster_fields})

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
