"""Node usage history (Proxmox rrddata), fetched by a worker for watched node pages only.

A node page subscribes to `node-<id>`; while someone watches it, beat refreshes its history once
per RRD_INTERVAL (one Proxmox call per watched node per minute) into the cache, and pushes the
charts. Page views only read the cache.
"""

from __future__ import annotations

import logging
import time

from django.core.cache import cache
from django.template.loader import render_to_string

from apps.core import live
from apps.proxmox.errors import ProxmoxError

from . import presence
from .models import Node

logger = logging.getLogger(__name__)

RRD_INTERVAL = 60  # rrddata's "hour" timeframe has one point per minute
RRD_TTL = 3600


def rrd_cache_key(node_id: int) -> str:
    return f"nodes:rrd:{node_id}"


def cached_rrd(node_id: int) -> dict | None:
    """{"fetched": unix time, "points": [...]} or None when never fetched."""
    return cache.get(rrd_cache_key(node_id))


def chart_specs(rrd: dict | None) -> dict:
    """uPlot specs for the node page: CPU % and memory % (and network) over the last hour."""
    if not rrd or not rrd.get("points"):
        return {}
    points = [p for p in rrd["points"] if p.get("time")]
    x = [int(p["time"]) for p in points]

    def pct(p, used, total):
        return round(100.0 * p[used] / p[total], 2) if p.get(used) is not None and p.get(total) else None

    return {
        "usage": {"labels": ["CPU %", "Memory %"], "x": x,
                  "series": [[round(100.0 * p["cpu"], 2) if p.get("cpu") is not None else None for p in points],
                             [pct(p, "memused", "memtotal") for p in points]]},
        "network": {"labels": ["in MB/s", "out MB/s"], "x": x,
                    "series": [[round(p["netin"] / 1e6, 3) if p.get("netin") is not None else None for p in points],
                               [round(p["netout"] / 1e6, 3) if p.get("netout") is not None else None for p in points]]},
    }


def refresh_rrd(node_id: int) -> bool:
    from .services import cluster_client

    node = Node.objects.select_related("cluster").filter(pk=node_id).first()
    if node is None:
        return False
    try:
        with cluster_client(node.cluster) as client:
            points = client.get(f"nodes/{node.name}/rrddata", timeframe="hour", cf="AVERAGE") or []
    except ProxmoxError as exc:
        logger.info("rrddata of %s/%s failed: %s", node.cluster.name, node.name, exc)
        return False
    rrd = {"fetched": time.time(), "points": points}
    cache.set(rrd_cache_key(node_id), rrd, RRD_TTL)
    html = render_to_string("nodes/partials/node_charts.html", {"node": node, "charts": chart_specs(rrd), "oob": True})
    live.push(f"node-{node_id}", html=html)
    return True


def enqueue_due_rrd() -> list[int]:
    """Queue a refresh for each watched node whose cached history is older than RRD_INTERVAL."""
    from .tasks import node_rrd_refresh

    node_ids = list(Node.objects.values_list("pk", flat=True))
    if not node_ids:
        return []
    counts = presence.watcher_counts([f"node-{pk}" for pk in node_ids])
    watched = [pk for pk in node_ids if counts.get(f"node-{pk}")]
    queued = []
    now = time.time()
    for pk in watched:
        rrd = cached_rrd(pk)
        if rrd and now - rrd.get("fetched", 0) < RRD_INTERVAL:
            continue
        if presence.mark_queued("rrd", pk, RRD_INTERVAL):
            node_rrd_refresh.delay(pk)
            queued.append(pk)
    return queued
