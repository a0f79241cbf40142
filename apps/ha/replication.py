"""Storage replication jobs (`/cluster/replication`): create, edit, delete.

Every write is an Operation (like the rest of HA): the request checks the policy (`ha.manage`,
operators only: a tenant who sees its guest's job gets a 403, another tenant's job is a 404) and
validates what Proxmox would refuse, each reason on its field, before anything is queued:

- the id is `<vmid>-<jobnum>` (Proxmox's pattern `[1-9][0-9]{2,8}-\\d{1,9}`), unique in the cluster;
  without a job number the lowest free one of the guest is taken, as Proxmox's GUI does;
- the target is another node of the cluster, and the guest is not already replicated there;
- every disk of the guest is on ZFS (`zfspool`), when we know its disks (its config, else what the
  HA refresh read): Proxmox says `missing replicate feature on volume` otherwise; and the target node
  has those ZFS storages (else every run fails);
- the schedule is a PVE calendar event (default `*/15`), at most 128 characters;
- the rate limit is a number of megabytes per second, at least 1 (empty: no limit);
- the comment is one line (Proxmox's section config cannot hold a line break), at most 4096;
- the cluster has quorum (Proxmox refuses every write without it: `cluster not ready - no quorum?`);
- a job Proxmox is removing (deleted, waiting for its run to clean up) is not edited again.

The worker calls Proxmox through apps.proxmox.ha, re-reads the jobs and their status (so the
pages show the change at once) and pushes the HA page to those who watch it.
"""

from __future__ import annotations

import math
import re

from django.core.exceptions import ValidationError
from django.db import transaction

from apps.operations.clients import client_for
from apps.operations.services import operation_create
from apps.permissions.policy import check
from apps.proxmox import ha as pve_ha

from .models import HaClusterState, HaResource, ReplicationJob

MAX_JOBNUM = 999_999_999  # \d{1,9}
VMID_RE = re.compile(r"^[1-9][0-9]{2,8}$")
DEFAULT_SCHEDULE = "*/15"
NO_QUORUM = "the cluster has no quorum: Proxmox refuses every change until it is back (cluster not ready - no quorum?)"


def _options(data: dict, errors: dict) -> dict:
    """schedule, rate, comment, disable as Proxmox gets them; problems go into `errors`."""
    from apps.guests.actions.backup_jobs import calendar_event_error

    schedule = str(data.get("schedule") or "").strip() or DEFAULT_SCHEDULE
    if problem := calendar_event_error(schedule):
        errors["schedule"] = [problem]
    rate = data.get("rate")
    if rate in ("", None):
        rate = None
    else:
        try:
            rate = float(rate)
        except (TypeError, ValueError):
            rate = None
            errors["rate"] = ["a number of megabytes per second, e.g. 50 or 12.5; empty for no limit"]
        else:
            if not math.isfinite(rate) or rate < 1:
                errors["rate"] = ["at least 1 megabyte per second (Proxmox's minimum); leave it empty for no limit"]
            elif rate > 1_000_000:
                errors["rate"] = ["at most 1000000 megabytes per second; leave it empty for no limit"]
            elif rate == int(rate):
                rate = int(rate)
    comment = str(data.get("comment") or "")
    if len(comment) > 4096:
        errors["comment"] = ["at most 4096 characters"]
    elif "\n" in comment or "\r" in comment:
        errors["comment"] = ["one line: Proxmox's replication config cannot hold a line break"]
    return {"schedule": schedule, "rate": rate, "comment": comment.strip(), "disable": bool(data.get("disable"))}


def _quorum(cluster, errors: dict) -> None:
    state = HaClusterState.objects.filter(cluster=cluster).only("quorate").first()
    if state is not None and state.quorate is False:
        errors.setdefault("__all__", []).append(NO_QUORUM)


def _disk_storages(guest) -> set[str]:
    """Storages holding the guest's disks as far as we know them (empty: not known)."""
    from .health import config_storages, guest_storages

    if guest.config:
        # A disk marked replicate=0 is left out of replication by Proxmox, so it does not count.
        return config_storages({k: v for k, v in guest.config.items()
                                if not (isinstance(v, str) and "replicate=0" in v)})
    # Not read yet: what the HA refresh read of an HA guest, else the storage contents.
    return guest_storages(guest, HaResource.objects.filter(cluster_id=guest.cluster_id, vmid=guest.vmid).first())


def _disk_problems(guest, target: str, errors: dict) -> None:
    """Disks replication cannot copy ('local-lvm (lvmthin)'), on the guest; ZFS storages the target
    node lacks, on the target. Nothing when we do not know the disks (Proxmox decides then)."""
    from apps.storage.models import Storage

    storages = _disk_storages(guest)
    if not storages:
        return
    rows = list(Storage.objects.filter(cluster_id=guest.cluster_id, storage__in=storages).select_related("node"))
    types = {row.storage: row.type for row in rows}
    if non_zfs := sorted(f"{s} ({types[s]})" for s in storages if s in types and types[s] != "zfspool"):
        errors["guest"] = [f"{guest.kind} {guest.vmid} has disks on {', '.join(non_zfs)}: replication needs every "
                           "disk on local ZFS (zfspool); Proxmox says 'missing replicate feature on volume'"]
        return
    if target and "target" not in errors:
        on = {row.storage: set() for row in rows}
        for row in rows:
            on[row.storage] |= {row.node.name} if row.node_id else set(row.nodes or [])
        if missing := sorted(s for s, nodes in on.items() if nodes and target not in nodes):
            errors["target"] = [f"{target} has no ZFS storage {', '.join(missing)}: the copies would have nowhere "
                                "to go (each run would fail)"]


def _free_jobnum(cluster, vmid: int) -> int:
    taken = {j.jobnum for j in ReplicationJob.objects.filter(cluster=cluster, vmid=vmid).only("job_id")}
    return next(n for n in range(len(taken) + 1) if n not in taken)


def replication_validate(*, guest, target: str, data: dict, jobnum: int | None = None) -> dict:
    """A new job for `guest` to node `target` as Proxmox will get it ({job_id, target, schedule,
    rate, comment, disable}), or ValidationError naming each bad field (see the module doc)."""
    cluster = guest.cluster
    errors: dict[str, list[str]] = {}
    if guest.template:
        errors["guest"] = [f"{guest.kind} {guest.vmid} is a template: templates are not replicated"]
    elif not VMID_RE.match(str(guest.vmid)):
        errors["guest"] = [f"guest id {guest.vmid} cannot name a replication job (100 to 999999999)"]
    target = str(target or "").strip()
    nodes = set(cluster.nodes.values_list("name", flat=True))
    source = guest.node.name if guest.node_id else ""
    same = ReplicationJob.objects.filter(cluster=cluster, vmid=guest.vmid, target=target).first()
    if not target:
        errors["target"] = ["choose the node that receives the copies"]
    elif target not in nodes:
        errors["target"] = [f"no node {target} in {cluster}"]
    elif target == source:
        errors["target"] = [f"{guest.kind} {guest.vmid} runs on {target}: replicate to another node"]
    elif same is not None:
        errors["target"] = [f"{guest.kind} {guest.vmid} is already replicated to {target} (job {same.job_id})"]
    if "guest" not in errors:
        _disk_problems(guest, target, errors)
    if jobnum in (None, ""):
        jobnum = _free_jobnum(cluster, guest.vmid)
    elif isinstance(jobnum, bool) or not isinstance(jobnum, int) or not 0 <= jobnum <= MAX_JOBNUM:
        errors["jobnum"] = [f"a whole number from 0 to {MAX_JOBNUM}"]
    elif ReplicationJob.objects.filter(cluster=cluster, job_id=f"{guest.vmid}-{jobnum}").exists():
        errors["jobnum"] = [f"job {guest.vmid}-{jobnum} already exists; leave the number empty to take the next free one"]
    options = _options(data, errors)
    _quorum(cluster, errors)
    if errors:
        raise ValidationError(errors)
    return {"job_id": f"{guest.vmid}-{jobnum}", "target": target, **options}


def replication_update_validate(*, job: ReplicationJob, data: dict) -> dict:
    """The changed settings of `job` as Proxmox will get them, or ValidationError per field."""
    errors: dict[str, list[str]] = {}
    if job.remove_job:
        errors["__all__"] = [f"job {job.job_id} is being removed: Proxmox deletes it at its next run"]
    if data.get("target") not in (None, "", job.target):
        errors["target"] = [f"the target of a job is fixed ({job.target}): delete the job and create another"]
    options = _options(data, errors)
    _quorum(job.cluster, errors)
    if errors:
        raise ValidationError(errors)
    return options


# -- requests ------------------------------------------------------------------------------------

def replication_job_create(*, guest, user, target: str, schedule: str = DEFAULT_SCHEDULE, rate=None,
                           comment: str = "", disable: bool = False, jobnum: int | None = None):
    """Replicate `guest`'s ZFS disks to node `target`: one operation. NotVisible/Denied (policy),
    ValidationError (field map) before anything is queued."""
    check(user, "ha.manage", guest)
    job = replication_validate(guest=guest, target=target, jobnum=jobnum,
                               data={"schedule": schedule, "rate": rate, "comment": comment, "disable": disable})
    source = guest.node.name if guest.node_id else "?"
    with transaction.atomic():
        return operation_create(kind="ha.replication_create", user=user, task_name="ha.ha_replication_create",
                                kwargs=job, target=guest, cluster_id=guest.cluster_id,
                                title=f"Replicate {guest.kind} {guest.vmid} {source} → {job['target']} "
                                      f"(job {job['job_id']})")


def replication_job_update(*, job: ReplicationJob, user, data: dict):
    """Change a job's schedule, rate limit, comment or disabled flag (absent keys keep their value)."""
    check(user, "ha.manage", job)
    current = {"schedule": job.schedule, "rate": job.rate, "comment": job.comment, "disable": job.disable}
    options = replication_update_validate(job=job, data={**current, **data})
    with transaction.atomic():
        return operation_create(kind="ha.replication_update", user=user, task_name="ha.ha_replication_update",
                                kwargs={"job_id": job.job_id, **options}, target=job.guest or _cluster_target(job),
                                cluster_id=job.cluster_id, title=f"Update replication job {job.job_id}")


def replication_job_delete(*, job: ReplicationJob, user, keep: bool = False):
    """Delete a job; unless `keep`, Proxmox also removes the copies on the target."""
    check(user, "ha.manage", job)
    errors: dict[str, list[str]] = {}
    if job.remove_job:
        errors["__all__"] = [f"job {job.job_id} is already being removed"]
    _quorum(job.cluster, errors)
    if errors:
        raise ValidationError(errors)
    with transaction.atomic():
        return operation_create(kind="ha.replication_delete", user=user, task_name="ha.ha_replication_delete",
                                kwargs={"job_id": job.job_id, "keep": bool(keep)},
                                target=job.guest or _cluster_target(job), cluster_id=job.cluster_id,
                                title=f"Delete replication job {job.job_id} ({job.guest_label()})")


def _cluster_target(job: ReplicationJob):
    return ("nodes.cluster", job.cluster_id, f"{job.cluster} / replication {job.job_id}")


# -- the worker ------------------------------------------------------------------------------------

def _after_write(operation, client) -> None:
    """Re-read the cluster's jobs and their status, then push the HA page (best effort)."""
    from apps.nodes.models import Cluster

    from . import live
    from .services import _refresh_replication

    _refresh_replication(Cluster.objects.get(pk=operation.cluster_id), client)
    transaction.on_commit(lambda: live.push_cluster(operation.cluster_id))


def run_create(operation, reporter, *, job_id, target, schedule, rate, comment, disable) -> dict:
    with client_for(operation.cluster_id) as client:
        pve_ha.replication_create(client, job_id, target=target, schedule=schedule, rate=rate, comment=comment,
                                  disable=disable)
        reporter.event(f"Job {job_id} created: to {target}, schedule {schedule}"
                       + (f", at most {rate} megabytes per second" if rate else "") + (" (disabled)" if disable else ""), progress=70)
        _after_write(operation, client)
    return {"job_id": job_id}


def run_update(operation, reporter, *, job_id, schedule, rate, comment, disable) -> dict:
    cleared = [key for key, value in (("rate", rate), ("comment", comment), ("disable", disable)) if not value]
    with client_for(operation.cluster_id) as client:
        pve_ha.replication_update(client, job_id, schedule=schedule, rate=rate, comment=comment, disable=disable,
                                  delete=cleared)
        reporter.event(f"Job {job_id}: schedule {schedule}, " + (f"at most {rate} megabytes per second" if rate else "no rate limit")
                       + (", disabled" if disable else ", enabled"), progress=70)
        _after_write(operation, client)
    return {"job_id": job_id}


def run_delete(operation, reporter, *, job_id, keep) -> dict:
    with client_for(operation.cluster_id) as client:
        pve_ha.replication_delete(client, job_id, keep=keep)
        reporter.event(f"Job {job_id} deleted" + (" (the copies on the target are kept)" if keep else "")
                       + ": Proxmox removes it at its next run", progress=70)
        _after_write(operation, client)
    return {"job_id": job_id}
