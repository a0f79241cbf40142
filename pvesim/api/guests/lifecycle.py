"""Guest lifecycle: HA forwarding, start/stop/shutdown and short power tasks, destroy and what
PVE purges after it."""

from __future__ import annotations

import re
from typing import Any, Callable

from ...errors import ApiError, TaskError
from ...state import Cluster, Guest
from .base import DURATION, check_lock, check_skiplock, locked_message, still_exists, still_unlocked, task_type
from .disks import destroy_volumes, guest_volumes, linked_children


# ---- HA (cluster.ha is pvesim.ha.HAManager; None only before the scenario is installed) ----------

def ha_sid(guest: Guest) -> str:
    return f"{'vm' if guest.type == 'qemu' else 'ct'}:{guest.vmid}"


def ha_managed(cluster: Cluster, guest: Guest) -> bool:
    """HA manages the guest (an `ignored` resource counts as unmanaged, as in PVE)."""
    return cluster.ha is not None and cluster.ha.is_managed(ha_sid(guest))


def ha_configured(cluster: Cluster, guest: Guest) -> bool:
    """An HA resource exists for the guest, in any state (also `ignored`): what destroy checks."""
    return cluster.ha is not None and ha_sid(guest) in cluster.ha.resources


def ha_status(cluster: Cluster, guest: Guest) -> dict:
    if not ha_managed(cluster, guest):
        return {"managed": 0}
    state = cluster.ha.service_state(ha_sid(guest))
    out: dict[str, Any] = {"managed": 1}
    if state:
        out["state"] = state
    return out


def ha_add(cluster: Cluster, guest: Guest, state: str) -> None:
    """`ha-managed=1` on create: add the HA resource (a task error if the HA manager refuses)."""
    if cluster.ha is None:
        return
    try:
        cluster.ha.add_resource(ha_sid(guest), state=state)
    except ApiError as exc:
        raise TaskError(exc.message) from None


def _ha_request(cluster: Cluster, guest: Guest, user: str, state: str) -> str:
    action = "start" if state == "started" else "stop"
    sid = ha_sid(guest)

    def worker(t):
        t.sleep(DURATION["ha"])
        t.log(f"Requesting HA {action} for {guest.kind} {guest.vmid}")
        try:
            cluster.ha.request_state(sid, state)
        except ApiError as exc:
            raise TaskError(exc.message) from None

    return cluster.tasks.start(node=guest.node, type=f"ha{action}", id=guest.vmid, user=user, worker=worker)


# ---- power --------------------------------------------------------------------------------------

def start_guest(cluster: Cluster, guest: Guest, user: str, *, skiplock: bool = False) -> str:
    """Start a guest in a task (qmstart/vzstart); HA-managed guests get a `hastart` request instead.

    Task errors: template, locked, already running (VMs), start hooks refusing (GPU in use ...).
    """
    if ha_managed(cluster, guest):
        return _ha_request(cluster, guest, user, "started")

    def worker(t):
        t.checkpoint()
        with cluster.lock:
            _start_checks(cluster, guest, skiplock)
        t.sleep(DURATION["start"])
        with cluster.lock:
            _start_checks(cluster, guest, skiplock)
            resume_state = guest.lock == "suspended"
            cluster.guest_started(guest)
            if resume_state:
                state = guest.config.pop("vmstate", None)
                guest.config.pop("lock", None)
                if state:
                    cluster.remove_volume(str(state), guest.node)

    return cluster.tasks.start(node=guest.node, type=task_type(guest, "start"), id=guest.vmid, user=user, worker=worker)


def _start_checks(cluster: Cluster, guest: Guest, skiplock: bool) -> None:
    still_exists(cluster, guest)
    if guest.is_template:
        raise TaskError(f"you can't start a {'vm' if guest.type == 'qemu' else 'CT'} if it's a template")
    if guest.lock and not skiplock and guest.lock != "suspended":
        raise TaskError(locked_message(guest))
    if guest.status == "running":
        raise TaskError(f"{guest.kind} {guest.vmid} already running")
    if not cluster.nodes[guest.node].online:
        raise TaskError("node is offline")


def stop_guest(cluster: Cluster, guest: Guest, user: str, *, skiplock: bool = False) -> str:
    """Hard-stop a guest in a task (qmstop/vzstop); HA-managed guests get a `hastop` request instead.

    Stopping a stopped VM is a no-op (as in PVE); a locked guest is a task error.
    """
    if ha_managed(cluster, guest):
        return _ha_request(cluster, guest, user, "stopped")

    def worker(t):
        t.checkpoint()
        with cluster.lock:
            still_unlocked(cluster, guest, skiplock)
        t.sleep(DURATION["stop"])
        with cluster.lock:
            if guest.status == "running":
                cluster.guest_stopped(guest)

    return cluster.tasks.start(node=guest.node, type=task_type(guest, "stop"), id=guest.vmid, user=user, worker=worker)


def shutdown_guest(cluster: Cluster, guest: Guest, user: str, *, timeout: int | None = None,
                   force_stop: bool = False, skiplock: bool = False) -> str:
    """Clean shutdown in a task (qmshutdown/vzshutdown). A guest with `acpi: 0` ignores the request:
    after `timeout` the task fails `VM quit/powerdown failed - got timeout`, or stops it with forceStop."""
    if ha_managed(cluster, guest):
        return _ha_request(cluster, guest, user, "stopped")
    if timeout is None:
        timeout = 180 if guest.type == "qemu" else 60

    def worker(t):
        t.checkpoint()
        with cluster.lock:
            still_unlocked(cluster, guest, skiplock)
            if guest.status != "running":
                return
        ignores = str(guest.config.get("acpi", "1")) == "0"
        needed = DURATION["shutdown"]
        if ignores or needed > timeout:
            t.sleep(timeout)
            if not force_stop:
                if guest.type == "qemu":
                    raise TaskError("VM quit/powerdown failed - got timeout")
                raise TaskError("shutdown failed - got timeout")
            t.log("VM still running - terminating now with SIGTERM" if guest.type == "qemu"
                  else "container still running - stopping it now")
        else:
            t.sleep(needed)
        with cluster.lock:
            if guest.status == "running":
                cluster.guest_stopped(guest)

    return cluster.tasks.start(node=guest.node, type=task_type(guest, "shutdown"), id=guest.vmid, user=user,
                               worker=worker)


def running_guest_task(ctx, guest: Guest, action: str, seconds: float, effect: Callable[[], None],
                       skiplock: bool = False) -> str:
    """A short task on a running guest (reboot, reset, pause, suspend, resume): task errors when the
    guest is gone, locked or not running; `effect()` runs under cluster.lock after `seconds`."""
    cluster = ctx.cluster

    def worker(t):
        t.checkpoint()
        with cluster.lock:
            still_unlocked(cluster, guest, skiplock)
            if guest.status != "running":
                raise TaskError(f"{guest.kind} {guest.vmid} not running")
        t.sleep(seconds)
        with cluster.lock:
            still_exists(cluster, guest)
            effect()

    return cluster.tasks.start(node=guest.node, type=task_type(guest, action), id=guest.vmid, user=ctx.authid,
                               worker=worker)


# ---- destroy -------------------------------------------------------------------------------------

def purge_references(cluster: Cluster, guest: Guest, purge: bool, log: Callable[[str], None]) -> None:
    """What PVE does after destroying a guest: drop pool membership, ACLs, firewall config; with
    purge also backup-job entries and the HA resource."""
    vmid = guest.vmid
    for pool in cluster.pools.values():
        pool["vms"].discard(vmid)
    if cluster.access is not None:
        cluster.access.acl = [a for a in cluster.access.acl if a.path != f"/vms/{vmid}"]
    cluster.firewall.get("guests", {}).pop(vmid, None)
    cluster.firewall.get("guests", {}).pop(str(vmid), None)
    if not purge:
        return
    log(f"purging {guest.kind} {vmid} from related configurations..")
    for job_id in list(cluster.backup_jobs):
        job = cluster.backup_jobs[job_id]
        for field in ("vmid", "exclude"):
            if job.get(field) is None:
                continue
            ids = [v for v in re.split(r"[,;\s]+", str(job[field])) if v]
            if str(vmid) not in ids:
                continue
            ids.remove(str(vmid))
            if ids:
                job[field] = ",".join(ids)
            elif field == "vmid":
                del cluster.backup_jobs[job_id]  # no guest left in the job: PVE removes it
            else:
                job.pop(field)
    if ha_configured(cluster, guest):
        cluster.ha.remove_resource(ha_sid(guest))
        log(f"NOTE: removed {guest.kind} {vmid} from HA resource configuration.")


def destroy(ctx, guest: Guest, p: dict) -> str:
    """DELETE guest -> qmdestroy/vzdestroy (sync: protection, HA without purge, running)."""
    cluster: Cluster = ctx.cluster
    vmid = guest.vmid
    ctx.check(f"/vms/{vmid}", "VM.Allocate")
    skiplock = check_skiplock(ctx, p)
    purge = bool(p.get("purge"))
    with cluster.lock:
        if str(guest.config.get("protection", "0")) == "1":
            raise ApiError(500, f"can't remove {guest.kind} {vmid} - protection mode enabled")
        if guest.type == "lxc":
            check_lock(guest, skiplock)
        if ha_configured(cluster, guest) and not purge:
            raise ApiError(500, f"unable to remove {guest.kind} {vmid} - used in HA resources and purge parameter not set.")
        if guest.status == "running":
            if guest.type == "qemu":
                raise ApiError(500, f"VM {vmid} is running - destroy failed")
            if not p.get("force"):
                raise ApiError(500, f"unable to destroy CT {vmid} - container is running")
    unreferenced = bool(p.get("destroy-unreferenced-disks", 1 if guest.type == "lxc" else 0))

    def worker(t):
        t.checkpoint()
        with cluster.lock:
            still_unlocked(cluster, guest, skiplock)
            for _key, volid in guest_volumes(guest):
                children = linked_children(cluster, volid)
                if children:
                    raise TaskError(f"base volume '{volid}' is still in use by linked cloned volume '{children[0]}'")
            if guest.status == "running":  # CT with force=1
                cluster.guest_stopped(guest)
            guest.config["lock"] = "destroyed"
        t.sleep(DURATION["destroy"])
        with cluster.lock:
            volids = [v for _k, v in guest_volumes(guest)]
            if unreferenced:
                for vol in list(cluster.volumes.values()):
                    st = cluster.storages.get(vol.storage)
                    if vol.vmid == vmid and vol.content in ("images", "rootdir") and vol.volid not in volids \
                            and st is not None and st.on_node(guest.node) and (st.shared or vol.node == guest.node):
                        volids.append(vol.volid)
            for volid in volids:
                st = cluster.storages.get(volid.split(":", 1)[0])
                if st is not None and st.type == "rbd":
                    t.log("Removing image: 100% complete...done.")
            destroy_volumes(cluster, guest, volids)
            del cluster.guests[vmid]
            purge_references(cluster, guest, purge, t.log)
            cluster.log_event(guest.node, ctx.authid, f"destroy {guest.kind} {vmid}")

    return cluster.tasks.start(node=guest.node, type=task_type(guest, "destroy"), id=vmid, user=ctx.authid, worker=worker)
