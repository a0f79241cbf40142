"""Backup jobs (/cluster/backup), their included volumes, and backup-info/not-backed-up."""

from __future__ import annotations

import re
import time
import uuid

from ...errors import ApiError
from ...params import P
from ...router import api
from ...state import Cluster
from .calendar import CalendarEvent, parse_calendar
from .common import DOW, JOB_ID, JOB_ONLY, VZDUMP_OPTS, _bad, backup_disks, included_guests, verify_vzdump_parameters


# ---- backup jobs -------------------------------------------------------------------------------

def _convert_schedule(p: dict) -> None:
    """starttime + dow (deprecated) -> schedule, as PVE does on create/update."""
    if "starttime" in p:
        hour, minute = (int(x) for x in p.pop("starttime").split(":"))
        dow = p.pop("dow", None)
        days = "" if not dow or set(dow.split(",")) == set(DOW) else dow + " "
        p["schedule"] = f"{days}{hour:02d}:{minute:02d}"
    p.pop("dow", None)


def _job_view(cluster: Cluster, job_id: str, job: dict, next_run: bool) -> dict:
    out = {"id": job_id, "type": "vzdump", **{k: v for k, v in job.items() if not k.startswith("_")}}
    out.setdefault("enabled", 1)
    if next_run and int(out["enabled"]):
        try:
            nxt = CalendarEvent(job["schedule"]).next_after(max(time.time(), job.get("_last", 0)))
        except (ValueError, IndexError):
            nxt = None
        if nxt:
            out["next-run"] = nxt
    return out


def _validate_job(cluster: Cluster, job: dict) -> None:
    verify_vzdump_parameters(job)
    if job.get("schedule"):
        parse_calendar(job["schedule"])
    if job.get("storage") and job["storage"] not in cluster.storages:
        raise ApiError(500, f"storage '{job['storage']}' does not exist")


@api.get("/cluster/backup", params={})
def job_index(ctx, p):
    ctx.check("/", "Sys.Audit")
    cluster = ctx.cluster
    with cluster.lock:
        return [_job_view(cluster, jid, job, True) for jid, job in sorted(cluster.backup_jobs.items())]


@api.post("/cluster/backup", params={**VZDUMP_OPTS, **JOB_ONLY, "id": P.string(format="pve-configid")})
def job_create(ctx, p):
    ctx.check("/", "Sys.Modify")
    for key in ("tmpdir", "dumpdir", "script"):
        if key in p and not ctx.is_root:
            _bad(key, "Only root may set this option.")
    if not p.get("schedule") and not p.get("starttime"):
        _bad("schedule", "neither 'starttime' nor 'schedule' were set")
    job = dict(p)
    job_id = job.pop("id", None) or f"backup-{uuid.uuid4().hex[:8]}-{uuid.uuid4().hex[:4]}"
    _convert_schedule(job)
    cluster = ctx.cluster
    with cluster.lock:
        if job_id in cluster.backup_jobs:
            raise ApiError(500, f"Job '{job_id}' already exists")
        _validate_job(cluster, job)
        job.setdefault("enabled", 1)
        cluster.backup_jobs[job_id] = job
    return None


def _job(cluster: Cluster, job_id: str) -> dict:
    job = cluster.backup_jobs.get(job_id)
    if job is None:
        _bad("id", f"No such job '{job_id}'")
    return job


@api.get("/cluster/backup/{id}", params={"id": JOB_ID})
def job_read(ctx, p):
    ctx.check("/", "Sys.Audit")
    with ctx.cluster.lock:
        out = _job_view(ctx.cluster, p["id"], _job(ctx.cluster, p["id"]), False)
        return out


@api.put("/cluster/backup/{id}", params={**VZDUMP_OPTS, **JOB_ONLY, "id": JOB_ID, "delete": P.string()})
def job_update(ctx, p):
    ctx.check("/", "Sys.Modify")
    for key in ("tmpdir", "dumpdir", "script"):
        if key in p and not ctx.is_root:
            _bad(key, "Only root may set this option.")
    cluster = ctx.cluster
    with cluster.lock:
        old = _job(cluster, p["id"])
        job = dict(old)
        for key in [k for k in re.split(r"[,;\s]+", p.get("delete", "")) if k]:
            if key not in VZDUMP_OPTS and key not in JOB_ONLY:
                _bad("delete", f"unknown option '{key}'")
            job.pop(key, None)
        changes = {k: v for k, v in p.items() if k not in ("id", "delete")}
        _convert_schedule(changes)
        job.update(changes)
        if "exclude" in job and "pool" not in job:
            job["all"] = 1
        if "vmid" in changes:
            for key in ("all", "exclude", "pool"):
                job.pop(key, None)
        elif changes.get("all"):
            job.pop("vmid", None)
            job.pop("pool", None)
        elif job.get("pool"):
            for key in ("vmid", "all", "exclude"):
                job.pop(key, None)
        if not job.get("schedule"):
            _bad("schedule", "neither 'starttime' nor 'schedule' were set")
        _validate_job(cluster, job)
        cluster.backup_jobs[p["id"]] = job
    return None


@api.delete("/cluster/backup/{id}", params={"id": JOB_ID})
def job_delete(ctx, p):
    ctx.check("/", "Sys.Modify")
    with ctx.cluster.lock:
        _job(ctx.cluster, p["id"])
        del ctx.cluster.backup_jobs[p["id"]]
    return None


@api.get("/cluster/backup/{id}/included_volumes", params={"id": JOB_ID})
def job_included_volumes(ctx, p):
    ctx.check("/", "Sys.Audit")
    cluster = ctx.cluster
    with cluster.lock:
        job = _job(cluster, p["id"])
        children = []
        for vmids in included_guests(cluster, job).values():
            for vmid in vmids:
                guest = cluster.guests.get(vmid)
                if guest is None:
                    children.append({"id": vmid, "type": "unknown", "children": []})
                    continue
                vols = [{"id": key, "name": volid, "included": 1 if inc else 0, "reason": reason}
                        for key, volid, _, inc, reason in backup_disks(guest)]
                children.append({"id": vmid, "name": guest.name, "type": guest.type, "children": vols})
        children.sort(key=lambda c: c["id"])
        return {"children": children}


@api.get("/cluster/backup-info/not-backed-up", params={})
def not_backed_up(ctx, p):
    ctx.check("/", "Sys.Audit")
    cluster = ctx.cluster
    with cluster.lock:
        covered: set[int] = set()
        for job in cluster.backup_jobs.values():
            if not int(job.get("enabled", 1)):
                continue
            for vmids in included_guests(cluster, job).values():
                covered.update(vmids)
        return [{"vmid": g.vmid, "type": g.type, "name": g.name}
                for g in sorted(cluster.guests.values(), key=lambda g: g.vmid) if g.vmid not in covered]
