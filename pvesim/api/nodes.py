"""/nodes: node list, node status, node rrddata."""

from __future__ import annotations

import math
import time

from ..params import P
from ..router import api
from .cluster import member_online, node_usage

TIMEFRAMES = {"hour": 60, "day": 1440, "week": 10080, "month": 43200, "year": 525600}  # seconds per point / 60


@api.get("/nodes", params={})
def node_list(ctx, p):
    cluster = ctx.cluster
    out = []
    with cluster.lock:
        for node in cluster.nodes.values():
            online = member_online(cluster, node)  # the answering node's view, as /cluster/resources
            item = {"node": node.name, "status": "online" if online else "offline", "id": f"node/{node.name}",
                    "type": "node", "level": node.level, "ssl_fingerprint": ""}
            if ctx.has(f"/nodes/{node.name}", "Sys.Audit") and online:
                usage = node_usage(cluster, node)
                item.update({"cpu": usage["cpu"], "maxcpu": node.maxcpu, "mem": usage["mem"], "maxmem": node.maxmem,
                             "disk": usage["disk"], "maxdisk": node.maxdisk, "uptime": node.uptime})
            out.append(item)
    return out


@api.get("/nodes/{node}/status", params={"node": P.node()}, proxyto="node")
def node_status(ctx, p):
    ctx.check(f"/nodes/{p['node']}", "Sys.Audit")
    cluster = ctx.cluster
    with cluster.lock:
        node = cluster.node(p["node"])
        usage = node_usage(cluster, node)
        return {
            "uptime": node.uptime, "cpu": usage["cpu"], "wait": 0.001, "loadavg": [f"{usage['cpu'] * node.maxcpu:.2f}"] * 3,
            "idle": 0, "kversion": "Linux 6.17.2-1-pve #1 SMP PREEMPT_DYNAMIC PMX 6.17.2-1", "pveversion": "pve-manager/9.1.8/7e1c3c0e5a0d4b7f",
            "cpuinfo": {"model": node.cpu_model, "cpus": node.maxcpu, "sockets": 1, "cores": node.maxcpu // 2,
                        "mhz": "3250.000", "hvm": "1", "flags": "", "user_hz": 100},
            "memory": {"total": node.maxmem, "used": usage["mem"], "free": node.maxmem - usage["mem"],
                       "available": node.maxmem - usage["mem"]},
            "swap": {"total": 8 * 1024 ** 3, "used": 0, "free": 8 * 1024 ** 3},
            "rootfs": {"total": node.maxdisk, "used": usage["disk"], "free": node.maxdisk - usage["disk"],
                       "avail": node.maxdisk - usage["disk"]},
            "ksm": {"shared": 0}, "boot-info": {"mode": "efi", "secureboot": 1},
            "current-kernel": {"sysname": "Linux", "release": "6.17.2-1-pve", "machine": "x86_64",
                               "version": "#1 SMP PREEMPT_DYNAMIC PMX 6.17.2-1"},
        }


def rrd_series(seed: int, timeframe: str, fields: dict[str, tuple[float, float]]) -> list[dict]:
    """70 points back from now: each field oscillates around `base` with `amplitude`."""
    step = TIMEFRAMES.get(timeframe, 60)
    now = int(time.time() // step) * step
    out = []
    for i in range(70, 0, -1):
        t = now - i * step
        point = {"time": t}
        for name, (base, amplitude) in fields.items():
            value = base + amplitude * math.sin(t / (step * 9.0) + seed + len(name)) + amplitude * 0.3 * math.sin(t / (step * 2.3) + seed)
            point[name] = max(0.0, round(value, 6))
        out.append(point)
    return out


@api.get("/nodes/{node}/rrddata", params={
    "node": P.node(), "timeframe": P.enum(["hour", "day", "week", "month", "year"], optional=False),
    "cf": P.enum(["AVERAGE", "MAX"]),
}, proxyto="node")
def node_rrddata(ctx, p):
    ctx.check(f"/nodes/{p['node']}", "Sys.Audit")
    cluster = ctx.cluster
    node = cluster.node(p["node"])
    usage = node_usage(cluster, node)
    return rrd_series(node.nodeid, p["timeframe"], {
        "cpu": (usage["cpu"], usage["cpu"] * 0.3), "maxcpu": (node.maxcpu, 0), "memused": (usage["mem"], usage["mem"] * 0.05),
        "memtotal": (node.maxmem, 0), "loadavg": (usage["cpu"] * node.maxcpu, 1.0), "netin": (2.5e6, 1.5e6),
        "netout": (1.8e6, 1.0e6), "iowait": (0.002, 0.001), "rootused": (usage["disk"], 0), "roottotal": (node.maxdisk, 0),
        "swapused": (0, 0), "swaptotal": (8 * 1024 ** 3, 0),
    })
