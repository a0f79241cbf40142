"""The simulator's own admin API under /pvesim (not Proxmox): fault injection and inspection.

Guarded by the admin secret (header `X-PVESim-Admin: <secret>` or `Authorization: Bearer <secret>`).
"""

from __future__ import annotations

from .errors import ApiError
from .params import P
from .router import Registry
from .sparse import SchemaUnavailable

admin = Registry()


@admin.get("/state", params={})
def state(server, p):
    c = server.cluster
    with c.lock:
        return {
            "name": c.name, "local_node": c.local_node, "time_scale": c.clock.scale,
            "nodes": {n.name: {"online": n.online, "partitioned": n.partitioned, "quorate": c.quorate(n.name) if n.online else False}
                      for n in c.nodes.values()},
            "guests": len(c.guests), "running_tasks": sum(1 for t in c.tasks.order if t.status == "running"),
            "sparse": server.sparse is not None,
        }


@admin.post("/nodes/{node}/power", params={"node": P.node(), "state": P.enum(["on", "off"], optional=False)})
def power(server, p):
    """Power a node off (it stops answering, its guests die, HA fences it) or back on."""
    c = server.cluster
    with c.lock:
        node = c.nodes.get(p["node"])
        if node is None:
            raise ApiError(404, f"no such node '{p['node']}'")
        on = p["state"] == "on"
        if node.online == on:
            return {"node": node.name, "online": node.online}
        node.online = on
        if on:
            import time
            node.boot_time = time.time()
            node.partitioned = False
        else:
            for guest in c.guests.values():
                if guest.node == node.name and guest.status == "running":
                    c.guest_stopped(guest)
        c.log_event(node.name, "root@pam", f"node {node.name} powered {'on' if on else 'off'} (pvesim)")
        c.node_changed(node)
        return {"node": node.name, "online": node.online}


@admin.post("/nodes/{node}/partition", params={"node": P.node(), "partitioned": P.boolean(optional=False)})
def partition(server, p):
    """Cut a node off from corosync (it stays reachable but loses quorum), or heal it."""
    c = server.cluster
    with c.lock:
        node = c.nodes.get(p["node"])
        if node is None:
            raise ApiError(404, f"no such node '{p['node']}'")
        node.partitioned = bool(p["partitioned"])
        c.node_changed(node)
        return {"node": node.name, "partitioned": node.partitioned}


@admin.post("/local-node", params={"node": P.node()})
def local_node(server, p):
    """Choose which node's pveproxy answers the API."""
    c = server.cluster
    c.node(p["node"])
    c.local_node = p["node"]
    return {"local_node": c.local_node}


@admin.post("/faults/task-failure", params={
    "type": P.string(optional=False), "message": P.string(optional=False), "count": P.integer(minimum=1, default=1)})
def task_failure(server, p):
    """The next `count` tasks of `type` (e.g. qmstart, qmigrate) end with TASK ERROR: message."""
    server.cluster.faults.fail_next(p["type"], p["message"], p.get("count", 1))
    return {"type": p["type"], "pending": len(server.cluster.faults.task_failures.get(p["type"], []))}


@admin.post("/faults/latency", params={"seconds": P.number(optional=False, minimum=0), "path": P.string()})
def latency(server, p):
    """Add latency (real seconds) to every API request, or to one route template."""
    faults = server.cluster.faults
    if p.get("path"):
        faults.path_latency[p["path"]] = p["seconds"]
    else:
        faults.latency = p["seconds"]
    return {"latency": faults.latency, "path_latency": faults.path_latency}


@admin.post("/faults/clear", params={})
def clear(server, p):
    server.cluster.faults.clear()
    return None


@admin.post("/time-scale", params={"scale": P.number(optional=False, minimum=0.001)})
def time_scale(server, p):
    server.cluster.clock.scale = p["scale"]
    return {"time_scale": server.cluster.clock.scale}


@admin.post("/reset", params={})
def reset(server, p):
    """Back to the scenario as loaded: state, faults and counters."""
    scale = server.cluster.clock.scale
    server.reset()
    server.cluster.clock.scale = scale
    return None


@admin.get("/counters", params={})
def counters(server, p):
    """Requests per method and route template since start or the last reset, 501s included
    (`implemented: false`; their path is the one asked for, or the template sparse mode refused)."""
    c = server.cluster
    with c.lock:
        items = sorted(c.requests.items(), key=lambda kv: (-kv[1], kv[0]))
        return {"total": sum(c.requests.values()), "unrouted": sum(c.unrouted.values()),
                "requests": [{"method": m, "path": path, "count": n, "implemented": (m, path) not in c.unrouted}
                             for (m, path), n in items]}


@admin.delete("/counters", params={})
def reset_counters(server, p):
    with server.cluster.lock:
        server.cluster.requests.clear()
        server.cluster.unrouted.clear()
    return None


@admin.get("/sparse", params={})
def sparse_state(server, p):
    return {"sparse": server.sparse is not None}


@admin.post("/sparse", params={"on": P.boolean(optional=False)})
def sparse_switch(server, p):
    """Answer with only what the PVE schema promises (on=1), or with everything again (on=0).
    Survives /pvesim/reset: it is a property of the server, not of the scenario."""
    try:
        server.set_sparse(bool(p["on"]))
    except SchemaUnavailable as exc:
        raise ApiError(500, str(exc))
    return {"sparse": server.sparse is not None}
