"""Snapshots: list, create (with RAM state), rollback, delete, and GET .../feature."""

from __future__ import annotations

import time
from typing import Any

from ...errors import ApiError, TaskError
from ...state import Cluster, Guest, Snapshot
from .base import DURATION, guest_task, still_exists, task_type
from .disks import allocate_volume, guest_volumes, human, storage_supports


def snapshot_list(guest: Guest) -> list[dict]:
    out = []
    for snap in sorted(guest.snapshots.values(), key=lambda s: s.snaptime):
        item: dict[str, Any] = {"name": snap.name, "description": snap.description, "snaptime": snap.snaptime}
        if snap.parent:
            item["parent"] = snap.parent
        if guest.type == "qemu":
            item["vmstate"] = 1 if snap.vmstate else 0
        out.append(item)
    current: dict[str, Any] = {"name": "current", "description": "You are here!", "digest": guest.digest(),
                               "running": 1 if guest.status == "running" else 0}
    if guest.parent_snapshot:
        current["parent"] = guest.parent_snapshot
    out.append(current)
    return out


def snapshot_create(ctx, guest: Guest, p: dict) -> str:
    cluster: Cluster = ctx.cluster
    name = p["snapname"]
    ctx.check(f"/vms/{guest.vmid}", "VM.Snapshot")
    if name == "current":
        raise ApiError(500, "unable to use snapshot name 'current' (reserved name)")
    if name.lower() == "pending":
        raise ApiError(500, "unable to use snapshot name 'pending' (reserved name)")
    vmstate = bool(p.get("vmstate")) and guest.type == "qemu"

    def worker(t):
        with cluster.lock:
            if name in guest.snapshots:
                raise TaskError(f"snapshot name '{name}' already used")
            for key, volid in guest_volumes(guest, include_snapshots=False):
                if key != "vmstate" and not storage_supports(cluster, volid, "snapshot"):
                    raise TaskError("snapshot feature is not available")
            config = {k: v for k, v in guest.config.items() if k != "lock"}
            running = guest.status == "running"
        state_vol = None
        if vmstate and running:
            first = next((v for _k, v in guest_volumes(guest, include_snapshots=False)), None)
            state_storage = str(guest.config.get("vmstatestorage") or (first or "local:").split(":", 1)[0])
            t.log(f"saving VM state and RAM using storage '{state_storage}'")
            t.sleep(DURATION["snapshot"] / 2)
            size = guest.maxmem() // 2
            state_vol = allocate_volume(cluster, vmid=guest.vmid, node=guest.node, storage=state_storage,
                                        size=size, content="images", name=f"vm-{guest.vmid}-state-{name}"
                                        + (".raw" if cluster.storages[state_storage].is_file_based else ""))
            t.log(f"{human(size * 0.7)} in 2s")
            t.log(f"completed saving the VM state in 2s, saved {human(size * 0.7)}")
        t.sleep(DURATION["snapshot"] / (2 if state_vol else 1))
        with cluster.lock:
            still_exists(cluster, guest)
            if state_vol is not None:
                config["vmstate"] = state_vol.volid
                config["runningmachine"] = "pc-i440fx-10.1+pve0"
            guest.snapshots[name] = Snapshot(name=name, config=config, snaptime=int(time.time()),
                                             description=p.get("description", ""), vmstate=state_vol is not None,
                                             parent=guest.parent_snapshot)
            guest.parent_snapshot = name
            cluster.log_event(guest.node, ctx.authid, f"snapshot {guest.kind} {guest.vmid}: {name}")

    return guest_task(cluster, guest, ctx.authid, task_type(guest, "snapshot"), worker, lock="snapshot",
                      lock_in_task=True)


def snapshot_rollback(ctx, guest: Guest, p: dict) -> str:
    cluster: Cluster = ctx.cluster
    name = p["snapname"]
    ctx.check(f"/vms/{guest.vmid}", "VM.Snapshot", "VM.Snapshot.Rollback", any=True)
    start_after = bool(p.get("start"))

    def worker(t):
        with cluster.lock:
            snap = guest.snapshots.get(name)
            if snap is None:
                raise TaskError(f"snapshot '{name}' does not exist")
        t.sleep(DURATION["rollback"])
        with cluster.lock:
            still_exists(cluster, guest)
            if guest.status == "running":
                cluster.guest_stopped(guest)
            restored = {k: v for k, v in snap.config.items() if k not in ("vmstate", "runningmachine", "runningcpu")}
            restored["lock"] = "rollback"
            guest.config = restored
            guest.parent_snapshot = name
            if snap.vmstate or start_after:
                cluster.guest_started(guest)
            cluster.log_event(guest.node, ctx.authid, f"rollback {guest.kind} {guest.vmid}: {name}")

    return guest_task(cluster, guest, ctx.authid, task_type(guest, "rollback"), worker, lock="rollback",
                      lock_in_task=True)


def snapshot_delete(ctx, guest: Guest, p: dict) -> str:
    cluster: Cluster = ctx.cluster
    name = p["snapname"]
    ctx.check(f"/vms/{guest.vmid}", "VM.Snapshot")
    force = bool(p.get("force"))

    def worker(t):
        with cluster.lock:
            if name not in guest.snapshots:
                raise TaskError(f"snapshot '{name}' does not exist")
        t.sleep(DURATION["delsnapshot"])
        with cluster.lock:
            still_exists(cluster, guest)
            snap = guest.snapshots.pop(name)
            for other in guest.snapshots.values():
                if other.parent == name:
                    other.parent = snap.parent
            if guest.parent_snapshot == name:
                guest.parent_snapshot = snap.parent
            state = snap.config.get("vmstate")
            if state:
                cluster.remove_volume(str(state), guest.node)
            cluster.log_event(guest.node, ctx.authid, f"delete snapshot {guest.kind} {guest.vmid}: {name}")

    # `force` removes the snapshot from the config even if a volume cannot be deleted; with the
    # lock taken in the task, a stale snapshot-delete lock is overridden by force as in PVE.
    return guest_task(cluster, guest, ctx.authid, task_type(guest, "delsnapshot"), worker, lock="snapshot-delete",
                      lock_in_task=True, skiplock=force and guest.lock == "snapshot-delete")


def snapshot_get(guest: Guest, name: str):
    snap = guest.snapshots.get(name)
    if snap is None:
        raise ApiError(500, f"snapshot '{name}' does not exist")
    return snap


def snapshot_update(guest: Guest, p: dict) -> None:
    """PUT .../snapshot/{snapname}/config: only the description can change."""
    snap = snapshot_get(guest, p["snapname"])
    if "description" in p:
        snap.description = p["description"]


def feature(cluster: Cluster, guest: Guest, feature_name: str, snapname: str | None) -> dict:
    """GET .../feature: can the guest's volumes do snapshot/clone/copy, and on which nodes."""
    if snapname:
        snapshot_get(guest, snapname)
    volids = [v for k, v in guest_volumes(guest, include_snapshots=False) if k != "vmstate"]
    ok = all(storage_supports(cluster, v, feature_name, guest.is_template) for v in volids)
    nodes = [n for n in cluster.nodes if all(cluster.storages[v.split(":", 1)[0]].shared or n == guest.node
                                             for v in volids if v.split(":", 1)[0] in cluster.storages)]
    return {"hasFeature": 1 if ok else 0, "nodes": nodes}
