"""Node usage history from rrddata (one call per watched node per minute): the fallback for
clusters without /cluster/metrics/export (before PVE 9.0; apps.nodes.usage decides and queues it),
and the charts of the node page, whichever source filled the cache. Page views only read the cache.
"""

from __future__ import annotations

import logging
import time

from django.core.cache import cache
from django.template.loader import render_to_string

from apps.core import live
from apps.core.units import MIB
from apps.proxmox import nodes as pve_nodes
from apps.proxmox.errors import ProxmoxError

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
        "network": {"labels": ["in MiB/s", "out MiB/s"], "x": x,  # binary units, as everywhere
                    "series": [[round(p["netin"] / MIB, 3) if p.get("netin") is not None else None for p in points],
                               [round(p["netout"] / MIB, 3) if p.get("netout") is not None else None for p in points]]},
    }


def refresh_rrd(node_id: int) -> bool:
    from .services import cluster_client

    node = Node.objects.select_related("cluster").filter(pk=node_id).first()
    if node is None:
        return False
    try:
        with cluster_client(node.cluster) as client:
            points = pve_nodes.rrddata(client, node.name)
    except ProxmoxError as exc:
        logger.info("rrddata of %s/%s failed: %s", node.cluster.name, node.name, exc)
        return False
    rrd = {"fetched": time.time(), "points": points}
    cache.set(rrd_cache_key(node_id), rrd, RRD_TTL)
    html = render_to_string("nodes/partials/node_charts.html", {"node": node, "charts": chart_specs(rrd), "oob": True})
    live.push(f"node-{node_id}", html=html)
    return True
