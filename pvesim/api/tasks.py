"""/nodes/{node}/tasks: task list, status, log, stop (pve-semantics §2.2)."""

from __future__ import annotations

import re

from ..errors import ApiError
from ..params import P
from ..router import Result, api

UPID_RE = re.compile(r"^UPID:([a-zA-Z0-9]([a-zA-Z0-9\-]*[a-zA-Z0-9])?):([0-9A-Fa-f]{8}):([0-9A-Fa-f]{8,9}):"
                     r"([0-9A-Fa-f]{8}):([^:\s/]+):([^:\s/]*):([^:\s/]+):$")


def _task(ctx, p):
    if not UPID_RE.match(p["upid"]):
        raise ApiError(400, "Parameter verification failed.", {"upid": "unable to parse worker upid"})
    task = ctx.cluster.tasks.get(p["upid"])
    if task is None or task.node != p["node"]:
        raise ApiError(400, "Parameter verification failed.", {"upid": "no such task"})
    if not (ctx.is_root or task.user == ctx.authid or (ctx.tokenid is None and task.userid == ctx.userid)):
        ctx.check(f"/nodes/{task.node}", "Sys.Audit")
    return task


@api.get("/nodes/{node}/tasks/{upid}/status", params={"node": P.node(), "upid": P.string(optional=False)}, proxyto="node")
def task_status(ctx, p):
    task = _task(ctx, p)
    with ctx.cluster.lock:
        return task.status_dict()


@api.get("/nodes/{node}/tasks/{upid}/log", params={
    "node": P.node(), "upid": P.string(optional=False), "start": P.integer(minimum=0, default=0),
    "limit": P.integer(minimum=0, default=50), "download": P.boolean(),
}, proxyto="node")
def task_log(ctx, p):
    task = _task(ctx, p)
    with ctx.cluster.lock:
        lines = list(task.lines)
    start, limit = p.get("start", 0), p.get("limit", 50)
    if not lines:
        return Result([{"n": 1, "t": "no content"}], total=1)
    chunk = lines[start:] if limit == 0 else lines[start:start + limit]
    return Result([{"n": start + i + 1, "t": t} for i, t in enumerate(chunk)], total=len(lines))


@api.delete("/nodes/{node}/tasks/{upid}", params={"node": P.node(), "upid": P.string(optional=False)},
            proxyto="node", quorum=False)
def task_stop(ctx, p):
    task = _task(ctx, p)
    if task.user != ctx.authid and not ctx.is_root:
        ctx.check(f"/nodes/{task.node}", "Sys.Modify")
    task.stop_requested.set()
    return None


@api.get("/nodes/{node}/tasks", params={
    "node": P.node(), "start": P.integer(minimum=0), "limit": P.integer(minimum=0), "errors": P.boolean(),
    "source": P.enum(["archive", "active", "all"]), "statusfilter": P.string(), "typefilter": P.string(),
    "userfilter": P.string(), "vmid": P.vmid(optional=True), "since": P.integer(), "until": P.integer(),
}, proxyto="node")
def node_tasks(ctx, p):
    cluster = ctx.cluster
    source = p.get("source", "archive")
    with cluster.lock:
        tasks = [t for t in reversed(cluster.tasks.order) if t.node == p["node"]]
    out = []
    for t in tasks:
        if source == "archive" and t.status == "running":
            continue
        if source == "active" and t.status != "running":
            continue
        if p.get("errors") and (t.exitstatus in (None, "OK")):
            continue
        if p.get("typefilter") and t.type != p["typefilter"]:
            continue
        if p.get("userfilter") and p["userfilter"] not in t.user:
            continue
        if p.get("vmid") and t.id != str(p["vmid"]):
            continue
        if p.get("since") and t.starttime < p["since"]:
            continue
        if p.get("until") and t.starttime > p["until"]:
            continue
        if not (ctx.is_root or t.user == ctx.authid or ctx.has(f"/nodes/{t.node}", "Sys.Audit")):
            continue
        out.append(t.list_dict())
    start, limit = p.get("start", 0), p.get("limit", 50)
    return Result(out[start:start + limit] if limit else out[start:], total=len(out))
