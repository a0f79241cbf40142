"""/cluster/replication and /nodes/{node}/replication: storage replication jobs (pve-semantics §8).

`cluster.replication[id] = {"guest", "jobnum", "target", "schedule", "rate"?, "comment"?,
"disable"?, "created"}`. Jobs run on the guest's node and only for guests whose every volume is
on ZFS (`zfspool`), as pvesr requires. There is no worker: a job's run history is computed when
it is read, one run per schedule interval of simulated time since it was created, each a few
simulated seconds long; a run whose source or target node is down (or cut off) fails and counts
in `fail_count` until a run succeeds again.
"""

from __future__ import annotations

import re
import time

from .. import params
from ..errors import ApiError
from ..params import P
from ..router import api
from .guests.disks import guest_volumes

params.FORMATS.setdefault("pve-replication-job-id", params._re_format(
    r"[1-9][0-9]{2,8}-\d{1,9}", "value does not look like a valid replication job id"))
JOB_ID = P.string(optional=False, format="pve-replication-job-id")
SCHEDULE = P.string(max_length=128, format="pve-calendar-event")
_EVERY = re.compile(r"^\*/(\d+)$")
RUN_SECONDS = 4.0  # simulated duration of one run


def install(cluster, scenario) -> None:
    cluster.replication = {}
    for job in (scenario or {}).get("replication", []):
        guest, _, num = job["id"].partition("-")
        cluster.replication[job["id"]] = {"guest": int(guest), "jobnum": int(num), "target": job["target"],
                                          "schedule": job.get("schedule", "*/15"), "created": time.time()}


def _interval(schedule: str) -> float:
    """Simulated seconds between runs: `*/N` minutes; anything else is read as every 15 minutes."""
    m = _EVERY.match(schedule or "")
    return 60.0 * int(m.group(1)) if m else 900.0


def _check_volumes(cluster, guest) -> None:
    for _key, volid in guest_volumes(guest, include_snapshots=False):
        storage = cluster.storages.get(volid.split(":", 1)[0])
        if storage is None or storage.type != "zfspool":
            raise ApiError(500, f"missing replicate feature on volume '{volid}'")


def _entry(cluster, jid: str, job: dict) -> dict:
    guest = cluster.guests.get(job["guest"])
    out = {"id": jid, "guest": job["guest"], "jobnum": job["jobnum"], "target": job["target"], "type": "local",
           "schedule": job["schedule"]}
    if guest is not None:
        out["source"] = guest.node
    for key in ("rate", "comment", "disable", "remove_job"):
        if job.get(key) not in (None, ""):
            out[key] = job[key]
    return out


def _node_alive(cluster, name: str | None) -> bool:
    node = cluster.nodes.get(name or "")
    return node is not None and node.online and not node.partitioned


def _status(cluster, jid: str, job: dict) -> dict:
    """The job as pvesr status shows it, its runs computed from the clock (see the module doc)."""
    out = _entry(cluster, jid, job)
    interval = cluster.clock.real(_interval(job["schedule"]))
    now = time.time()
    runs = int((now - job["created"]) // interval) if interval else 0
    out["duration"] = RUN_SECONDS
    out["next_sync"] = int(job["created"] + (runs + 1) * interval)
    if job.get("disable"):
        out["fail_count"] = 0
        return out
    source = out.get("source")
    if not (_node_alive(cluster, source) and _node_alive(cluster, job["target"])):
        down = source if not _node_alive(cluster, source) else job["target"]
        job.setdefault("failing_since", now)
        failed = 1 + int((now - job["failing_since"]) // interval) if interval else 1
        out["fail_count"] = failed
        out["last_try"] = int(now)
        out["error"] = f"command 'ssh -o BatchMode=yes root@{down} -- pvesr prepare-local-job {jid}' failed: exit code 255"
    else:
        job.pop("failing_since", None)
        out["fail_count"] = 0
    if runs or not out.get("error"):
        out["last_sync"] = int(job["created"] + runs * interval) if runs else int(job["created"])
        out.setdefault("last_try", out["last_sync"])
    return out


@api.get("/cluster/replication", params={})
def replication_list(ctx, p):
    ctx.check("/", "Sys.Audit")
    with ctx.cluster.lock:
        return [_entry(ctx.cluster, jid, job) for jid, job in sorted(ctx.cluster.replication.items())]


@api.get("/cluster/replication/{id}", params={"id": JOB_ID})
def replication_get(ctx, p):
    ctx.check("/", "Sys.Audit")
    with ctx.cluster.lock:
        job = ctx.cluster.replication.get(p["id"])
        if job is None:
            raise ApiError(500, f"replication job '{p['id']}' does not exist")
        return _entry(ctx.cluster, p["id"], job)


@api.post("/cluster/replication", params={
    "id": JOB_ID, "target": P.node(), "type": P.enum(["local"], optional=False), "schedule": SCHEDULE,
    "rate": P.number(minimum=1), "comment": P.string(max_length=4096), "disable": P.boolean(),
    "remove_job": P.enum(["local", "full"]), "source": P.string(format="pve-node"),
})
def replication_create(ctx, p):
    c = ctx.cluster
    with c.lock:
        guest_id, _, num = p["id"].partition("-")
        guest = c.guests.get(int(guest_id))
        if guest is None:
            raise ApiError(500, f"unable to find VM/CT {guest_id}")
        ctx.check(f"/vms/{guest.vmid}", "VM.Replicate")
        c.require_quorum(ctx.node)
        if p["id"] in c.replication:
            raise ApiError(500, f"replication job '{p['id']}' already exists")
        if p["target"] not in c.nodes:
            raise ApiError(500, f"no such node '{p['target']}'")
        if p["target"] == guest.node:
            raise ApiError(500, f"Source '{guest.node}' and target '{p['target']}' node are the same")
        if any(j["guest"] == guest.vmid and j["target"] == p["target"] for j in c.replication.values()):
            raise ApiError(500, f"guest '{guest.vmid}' is already replicated to node '{p['target']}'")
        _check_volumes(c, guest)
        job = {"guest": guest.vmid, "jobnum": int(num), "target": p["target"],
               "schedule": p.get("schedule") or "*/15", "created": time.time()}
        for key in ("rate", "comment", "disable"):
            if p.get(key) not in (None, ""):
                job[key] = p[key]
        c.replication[p["id"]] = job


def _writable_job(ctx, jid: str) -> dict:
    """The job `jid`, once the caller may replicate its guest and the cluster is quorate."""
    job = ctx.cluster.replication.get(jid)
    if job is None:
        raise ApiError(500, f"replication job '{jid}' does not exist")
    ctx.check(f"/vms/{job['guest']}", "VM.Replicate")
    ctx.cluster.require_quorum(ctx.node)
    return job


@api.put("/cluster/replication/{id}", params={
    "id": JOB_ID, "schedule": SCHEDULE, "rate": P.number(minimum=1), "comment": P.string(max_length=4096),
    "disable": P.boolean(), "delete": P.string(max_length=4096, format="pve-configid-list"), "digest": P.digest(),
    "remove_job": P.enum(["local", "full"]), "source": P.string(format="pve-node"),
})
def replication_update(ctx, p):
    with ctx.cluster.lock:
        job = _writable_job(ctx, p["id"])
        for key in re.split(r"[,;\s]+", p.get("delete") or ""):
            if key:
                job.pop(key, None)
        for key in ("schedule", "rate", "comment", "disable", "remove_job"):
            if key in p:
                job[key] = p[key]


@api.delete("/cluster/replication/{id}", params={"id": JOB_ID, "force": P.boolean(default=0),
                                                 "keep": P.boolean(default=0)})
def replication_delete(ctx, p):
    with ctx.cluster.lock:
        _writable_job(ctx, p["id"])
        ctx.cluster.replication.pop(p["id"])  # no replicated volumes are simulated: removal is immediate


def _on_node(c, node: str, guest: int | None = None) -> list[tuple[str, dict]]:
    out = []
    for jid, job in sorted(c.replication.items()):
        g = c.guests.get(job["guest"])
        if g is not None and g.node == node and guest in (None, job["guest"]):
            out.append((jid, job))
    return out


@api.get("/nodes/{node}/replication", params={"node": P.node(), "guest": P.vmid(optional=True)},
         proxyto="node")
def node_replication(ctx, p):
    ctx.check("/", "Sys.Audit")
    c = ctx.cluster
    with c.lock:
        return [_status(c, jid, job) for jid, job in _on_node(c, p["node"], p.get("guest"))]


@api.get("/nodes/{node}/replication/{id}/status", params={"node": P.node(), "id": JOB_ID}, proxyto="node")
def node_replication_status(ctx, p):
    ctx.check("/", "Sys.Audit")
    c = ctx.cluster
    with c.lock:
        found = dict(_on_node(c, p["node"])).get(p["id"])
        if found is None:
            raise ApiError(500, f"replication job '{p['id']}' does not exist")
        return _status(c, p["id"], found)
