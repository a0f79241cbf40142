"""/cluster/metrics/export: every node's, guest's and storage's metrics in one call.

As pve-manager's PullMetric: pvestatd stores one generation of metrics every 10 s and keeps the
last 181 (30 minutes); without `history` only the newest generation is returned. Each node
answers for itself (node/<name>, its guests qemu/<vmid> and lxc/<vmid>, storage/<node>/<id>);
the called node fans out to the online members unless `local-only` is set. Answer: `{"data":
[{id, metric, timestamp, type, value}, ...]}` sorted by timestamp.
"""

from __future__ import annotations

import math
import time

from ..params import P
from ..router import api
from .cluster import guest_disk_size, guest_usage, node_usage
from .storage.volumes import storage_status

GENERATION = 10  # pvestatd's update loop, seconds
KEPT = 181  # PullMetric keeps 180 old generations plus the newest
SWAP = 8 * 1024 ** 3


def _vary(base: float, t: int, seed: int) -> float:
    """A past value near today's: +-15 % along a slow wave, deterministic per timestamp."""
    return base * (0.85 + 0.3 * (0.5 + 0.5 * math.sin(t / 300.0 + seed)))


def _metric(mid: str, t: int, name: str, value: float, kind: str = "gauge") -> dict:
    return {"id": mid, "metric": name, "timestamp": t, "type": kind, "value": value}


def _node_snapshot(cluster, node) -> dict:
    """Everything one node reports, read once under the cluster lock."""
    usage = node_usage(cluster, node)
    guests = []
    for guest in cluster.guests.values():
        if guest.node != node.name:
            continue
        guests.append({"id": f"{guest.type}/{guest.vmid}", "seed": guest.vmid, "lxc": guest.type == "lxc",
                       "maxcpu": guest.maxcpu(), "maxmem": guest.maxmem(), "maxdisk": guest_disk_size(guest),
                       **guest_usage(cluster, guest)})
    storages = []
    for sid, st in cluster.storages.items():
        if st.enabled and (st.nodes is None or node.name in st.nodes):
            status = storage_status(cluster, st, node.name)
            storages.append({"id": f"storage/{node.name}/{sid}", "total": status["total"], "used": status["used"]})
    return {"name": node.name, "seed": node.nodeid, "uptime": node.uptime, "maxcpu": node.maxcpu,
            "maxmem": node.maxmem, "maxdisk": node.maxdisk, **usage, "guests": guests, "storages": storages}


def _generation(snap: dict, t: int, age: int) -> list[dict]:
    """The metrics one node stored at time t (age seconds ago)."""
    out = []
    nid, seed = f"node/{snap['name']}", snap["seed"]
    uptime = max(0, snap["uptime"] - age)
    cpu = round(_vary(snap["cpu"], t, seed), 4)
    load = round(cpu * snap["maxcpu"], 2)
    out += [_metric(nid, t, "uptime", uptime),
            _metric(nid, t, "net_in", uptime * 2_500_000, "derive"),
            _metric(nid, t, "net_out", uptime * 1_800_000, "derive"),
            _metric(nid, t, "cpu_avg1", load), _metric(nid, t, "cpu_avg5", load), _metric(nid, t, "cpu_avg15", load),
            _metric(nid, t, "cpu_max", snap["maxcpu"]), _metric(nid, t, "cpu_current", cpu),
            _metric(nid, t, "cpu_iowait", 0.002),
            _metric(nid, t, "mem_total", snap["maxmem"]), _metric(nid, t, "mem_used", int(_vary(snap["mem"], t, seed))),
            _metric(nid, t, "swap_total", SWAP), _metric(nid, t, "swap_used", 0),
            _metric(nid, t, "disk_total", snap["maxdisk"]), _metric(nid, t, "disk_used", snap["disk"])]
    for g in snap["guests"]:
        gid, up = g["id"], max(0, g["uptime"] - age)
        if up:
            out += [_metric(gid, t, "cpu_current", round(_vary(g["cpu"], t, g["seed"]), 4)),
                    _metric(gid, t, "mem_used", int(_vary(g["mem"], t, g["seed"]))),
                    _metric(gid, t, "disk_read", up * 90_000, "derive"),
                    _metric(gid, t, "disk_write", up * 60_000, "derive"),
                    _metric(gid, t, "net_in", up * 40_000 + g["seed"], "derive"),
                    _metric(gid, t, "net_out", up * 25_000 + g["seed"], "derive")]
            if g["lxc"]:
                out.append(_metric(gid, t, "disk_used", int(g["maxdisk"] * 0.4)))
        out += [_metric(gid, t, "uptime", up), _metric(gid, t, "cpu_max", g["maxcpu"]),
                _metric(gid, t, "mem_total", g["maxmem"]), _metric(gid, t, "disk_total", g["maxdisk"])]
    for s in snap["storages"]:
        out += [_metric(s["id"], t, "disk_total", s["total"]), _metric(s["id"], t, "disk_used", s["used"])]
    return out


@api.get("/cluster/metrics/export", params={
    "history": P.boolean(), "local-only": P.boolean(), "node-list": P.string(), "start-time": P.integer(),
})
def metrics_export(ctx, p):
    ctx.check("/", "Sys.Audit")
    cluster = ctx.cluster
    now = int(time.time())
    start = p.get("start-time")
    if p.get("history"):
        # PullMetric: the whole history, or the generations since start-time (10 s each)
        older = KEPT - 1 if start is None else max(0, min(KEPT - 1, (now - start) // GENERATION))
    else:
        older = 0
    wanted = None
    if p.get("node-list"):
        wanted = {n.strip() for n in p["node-list"].split(",") if n.strip()}
    with cluster.lock:
        if p.get("local-only") or cluster.node(ctx.node).partitioned:
            names = [ctx.node]
        else:  # the members this node can reach: online and on its side of corosync
            names = [n.name for n in cluster.nodes.values() if n.online and (n.name == ctx.node or not n.partitioned)]
        if wanted is not None:  # a filter: names of no member simply match nothing
            names = [n for n in names if n in wanted]
        snaps = [_node_snapshot(cluster, cluster.nodes[n]) for n in names]
    newest = now // GENERATION * GENERATION
    metrics = []
    for age_steps in range(older, -1, -1):
        t = newest - age_steps * GENERATION
        for snap in snaps:
            metrics += _generation(snap, t, now - t)
    if start is not None:
        metrics = [m for m in metrics if m["timestamp"] > start]
    metrics.sort(key=lambda m: m["timestamp"])
    return {"data": metrics}
