"""Usage history for the node and guest charts, one Proxmox call per cluster per minute.

While a node page (`node-<id>`) or a guest page (`guest-<id>`) of a cluster is watched, beat queues
`nodes.cluster_usage_refresh` at most once per USAGE_INTERVAL (after NEW_PAGE_INTERVAL when a page
opened whose object has nothing kept yet). It makes ONE call, /cluster/metrics/export (PVE 9.0+,
pve-manager's PullMetric: a generation every 10 s, 30 minutes kept), limited to the nodes that carry watched objects and to what is newer than the newest
timestamp already kept (the last BACKFILL seconds when a watched object has nothing kept yet).
Each watched object's points are merged into a rolling WINDOW in the cache, under the keys the
pages read (rrddata-shaped points, byte counters turned into rates), and the charts are pushed.

A cluster that does not serve the export (before 9.0: 501, or every node known older) is
remembered for MISSING_TTL; its nodes fall back to rrddata per watched node (apps.nodes.rrd) and
its guests to rrddata inside guests.guest_refresh, as before.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

from django.apps import apps
from django.core.cache import cache
from django.template.loader import render_to_string

from apps.core import live
from apps.proxmox import cluster as pve_cluster
from apps.proxmox import guests as pve_guests
from apps.proxmox.errors import ProxmoxError
from apps.proxmox.refs import GuestRef
from apps.proxmox.versions import has_metrics_export

from . import presence, rrd
from .models import Cluster, Node

logger = logging.getLogger(__name__)

USAGE_INTERVAL = 60  # seconds between two export calls of one cluster
NEW_PAGE_INTERVAL = 10  # ...but a newly opened page with nothing kept waits at most this (one generation)
WINDOW = 3600  # the charts show the last hour
BACKFILL = 1800  # PullMetric keeps 30 minutes: the most a first call can get
MISSING_TTL = 6 * 3600  # a cluster without the export is asked again after this (it may have been upgraded)
SERIES_TTL = 2 * WINDOW
# PullMetric's byte counters (type derive) -> the rate fields of rrddata's points
COUNTERS = {"net_in": "netin", "net_out": "netout", "disk_read": "diskread", "disk_write": "diskwrite"}
GAUGES = {"node": {"cpu_current": "cpu", "mem_used": "memused", "mem_total": "memtotal"},
          "guest": {"cpu_current": "cpu", "mem_used": "mem", "mem_total": "maxmem"}}


@dataclass(frozen=True)
class Watched:
    """A watched node or guest page: `pid` is its id in the export (node/pve1, qemu/101)."""

    kind: str  # node | guest
    pk: int
    pid: str
    node: str
    version: str


def series_key(kind: str, pk: int) -> str:
    """Cache key of one object's history ({"fetched", "points", "last"}), read by its page."""
    return rrd.rrd_cache_key(pk) if kind == "node" else f"guests:rrd:{pk}"


def _state_key(cluster_id: int) -> str:
    return f"nodes:usage:{cluster_id}"


def _missing_key(cluster_id: int) -> str:
    return f"nodes:usage:missing:{cluster_id}"


def export_serves(cluster_id: int, version: str | None) -> bool:
    """True when a node of this version on this cluster has its history from the export."""
    return has_metrics_export(version) and not cache.get(_missing_key(cluster_id))


def watched_objects(cluster_ids: list[int]) -> dict[int, list[Watched]]:
    """Watched node and guest pages per cluster (guests whose node is unknown are left out). Reads
    only the pages open now (presence.watched_groups), never every guest of every cluster."""
    Guest = apps.get_model("guests", "Guest")  # nodes does not import the apps above it
    open_groups = presence.watched_groups("node-", "guest-")
    if not open_groups or not cluster_ids:
        return {}
    counts = presence.watcher_counts(open_groups)

    def pks(prefix: str) -> list[int]:
        return [int(g[len(prefix):]) for g in open_groups if g.startswith(prefix) and g[len(prefix):].isdigit()
                and counts.get(g)]

    nodes = Node.objects.filter(pk__in=pks("node-"), cluster_id__in=cluster_ids).values_list(
        "pk", "cluster_id", "name", "pve_version")
    guests = Guest.objects.filter(pk__in=pks("guest-"), cluster_id__in=cluster_ids, node__isnull=False).values_list(
        "pk", "cluster_id", "type", "vmid", "node__name", "node__pve_version")
    out: dict[int, list[Watched]] = {}
    for pk, cluster_id, name, version in nodes:
        out.setdefault(cluster_id, []).append(Watched("node", pk, f"node/{name}", name, version))
    for pk, cluster_id, kind, vmid, node, version in guests:
        out.setdefault(cluster_id, []).append(Watched("guest", pk, f"{kind}/{vmid}", node, version))
    return out


def enqueue_due() -> list[int]:
    """Beat: queue one usage refresh per cluster with a watched node or guest page whose history
    is older than USAGE_INTERVAL; nodes of clusters without the export get their rrddata refresh
    (apps.nodes.rrd) instead. Returns the clusters queued."""
    from .tasks import cluster_usage_refresh, node_rrd_refresh

    cluster_ids = list(Cluster.objects.values_list("pk", flat=True))
    if not cluster_ids:
        return []
    now = time.time()
    states = cache.get_many([_state_key(pk) for pk in cluster_ids] + [_missing_key(pk) for pk in cluster_ids])
    age = {pk: now - (states.get(_state_key(pk)) or {}).get("fetched", 0) for pk in cluster_ids}
    # a cluster without the export is looked at every tick: its nodes' rrddata have their own pace
    candidates = [pk for pk in cluster_ids if age[pk] >= NEW_PAGE_INTERVAL or _missing_key(pk) in states]
    queued = []
    for cluster_id, objects in watched_objects(candidates).items():
        served = [o for o in objects if export_serves(cluster_id, o.version)]
        # a page just opened with nothing kept gets its half hour now, not at the next minute
        due = age[cluster_id] >= USAGE_INTERVAL or (
            served and len(cache.get_many([series_key(o.kind, o.pk) for o in served])) < len(served))
        if served and due and presence.mark_queued("usage", cluster_id, USAGE_INTERVAL):
            cluster_usage_refresh.delay(cluster_id)
            queued.append(cluster_id)
        for o in objects:
            if o.kind == "node" and o not in served:
                fresh = rrd.cached_rrd(o.pk)
                if (not fresh or now - fresh.get("fetched", 0) >= rrd.RRD_INTERVAL) and \
                        presence.mark_queued("rrd", o.pk, rrd.RRD_INTERVAL):
                    node_rrd_refresh.delay(o.pk)
    return queued


def _generations(metrics: list[dict]) -> dict[str, dict[int, dict[str, float]]]:
    """{object id: {timestamp: {metric: value}}}."""
    out: dict[str, dict[int, dict[str, float]]] = {}
    for m in metrics:
        out.setdefault(m["id"], {}).setdefault(m["timestamp"], {})[m["metric"]] = m["value"]
    return out


def _points(kind: str, generations: dict[int, dict[str, float]], last: dict, after: int) -> tuple[list[dict], dict]:
    """rrddata-shaped points from one object's generations newer than `after`; a counter becomes a
    rate against its previous value (`last`: {metric: [time, value]}, kept between calls; a
    counter that went down, a restart, gives no rate)."""
    last = dict(last)
    points = []
    for t in sorted(generations):
        values = generations[t]
        point: dict = {"time": t}
        for metric, field in GAUGES[kind].items():
            if metric in values:
                point[field] = values[metric]
        for metric, field in COUNTERS.items():
            if metric not in values:
                continue
            before = last.get(metric)
            if before and t > before[0] and values[metric] >= before[1]:
                point[field] = (values[metric] - before[1]) / (t - before[0])
            last[metric] = [t, values[metric]]
        if t > after:
            points.append(point)
    return points, last


def refresh_usage(cluster_id: int) -> dict | None:
    """One usage refresh of a cluster: one /cluster/metrics/export call for its watched objects,
    merged into their cached windows and pushed. Returns a summary (None: nothing to do). Never
    raises for Proxmox: a failed call is logged and retried at the next interval."""
    try:
        cluster = Cluster.objects.filter(pk=cluster_id).first()
        if cluster is None:
            return None
        with presence.locked("usage", cluster_id, timeout=USAGE_INTERVAL) as held:
            return _refresh(cluster) if held else None  # held: another worker does this very refresh
    finally:
        # cleared once the state is saved: a beat tick while this runs does not queue it again
        presence.clear_queued("usage", cluster_id)


def _refresh(cluster: Cluster) -> dict | None:
    cluster_id = cluster.pk
    objects = [o for o in watched_objects([cluster_id]).get(cluster_id, []) if export_serves(cluster_id, o.version)]
    if not objects:
        return None
    now = int(time.time())
    state = cache.get(_state_key(cluster_id)) or {}
    keys = {o: series_key(o.kind, o.pk) for o in objects}
    kept = cache.get_many(list(keys.values()))
    floor = now - BACKFILL
    # from the newest timestamp kept, or from where an object left out of the last refresh (a page
    # just opened, or open again) stops: PullMetric's half hour at most
    since = [int(state["newest"])] if state.get("newest") is not None else [floor]
    for key in keys.values():
        entry = kept.get(key)
        if not entry:
            since.append(floor)
        elif entry.get("fetched", 0) < state.get("fetched", 0):  # (one on a node that is down stays in)
            since.append(int(entry["points"][-1]["time"]) if entry.get("points") else floor)
    start = max(min(since), floor)
    nodes = sorted({o.node for o in objects})
    cache.set(_state_key(cluster_id), dict(state, fetched=now), SERIES_TTL)
    from .services import cluster_client

    try:
        with cluster_client(cluster) as client:
            metrics = pve_cluster.metrics_export(client, history=True, start_time=start, nodes=nodes)
            if metrics is None:
                cache.set(_missing_key(cluster_id), True, MISSING_TTL)
                logger.info("cluster %s has no /cluster/metrics/export: usage history from rrddata", cluster.name)
                _guests_from_rrddata(client, cluster_id, [o for o in objects if o.kind == "guest"])
                return {"missing": True}
    except ProxmoxError as exc:
        logger.info("usage history of cluster %s failed: %s", cluster.name, exc)
        return {"error": str(exc)}
    generations = _generations(metrics)
    newest = max((m["timestamp"] for m in metrics), default=state.get("newest") or start)
    entries = {}
    for o in objects:
        entry = kept.get(keys[o]) or {}
        old = entry.get("points") or []
        after = old[-1]["time"] if old else 0
        new, last = _points(o.kind, generations.get(o.pid, {}), entry.get("last") or {}, after)
        points = old + new
        if points:
            horizon = points[-1]["time"] - WINDOW
            points = [p for p in points if p["time"] > horizon]
        entries[keys[o]] = {"fetched": time.time(), "points": points, "last": last, "source": "export"}
    cache.set_many(entries, SERIES_TTL)
    cache.set(_state_key(cluster_id), {"fetched": now, "newest": newest}, SERIES_TTL)
    _push(objects, entries, keys)
    return {"start": start, "newest": newest, "nodes": nodes, "metrics": len(metrics),
            "objects": {o.pid: len(entries[keys[o]]["points"]) for o in objects}}


def _guests_from_rrddata(client, cluster_id: int, guests: list[Watched]) -> None:
    """The export is missing: the open guest pages get their hour from rrddata once now (later
    ones read it in guests.guest_refresh, as before the export)."""
    for o in guests:
        kind, vmid = o.pid.split("/")
        try:
            points = pve_guests.rrddata(client, GuestRef(o.node, kind, int(vmid)))
        except ProxmoxError as exc:
            logger.info("rrddata of %s failed: %s", o.pid, exc)
            continue
        cache.set(series_key("guest", o.pk), {"fetched": time.time(), "points": points}, SERIES_TTL)
    _push(guests, {}, {})


def _push(objects: list[Watched], entries: dict, keys: dict) -> None:
    nodes = Node.objects.in_bulk([o.pk for o in objects if o.kind == "node"])
    for o in objects:
        if o.kind == "node" and o.pk in nodes:
            html = render_to_string("nodes/partials/node_charts.html", {
                "node": nodes[o.pk], "charts": rrd.chart_specs(entries.get(keys[o])), "oob": True})
            live.push(f"node-{o.pk}", html=html)
        elif o.kind == "guest":
            # the guest's charts live in its details block: the trigger makes the page re-read it
            html = render_to_string("guests/partials/guest_details_stale.html", {"guest": {"pk": o.pk}})
            live.push(f"guest-{o.pk}", html=html, data={"type": "guest.usage", "id": o.pk})
