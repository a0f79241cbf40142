"""Route bodies that change one disk: resize, and move_disk (qemu) / move_volume (lxc)."""

from __future__ import annotations

import re

from ...errors import ApiError, TaskError
from ...scenario import is_disk_key
from ...state import GiB, MiB, Cluster, Guest
from .base import (DURATION, assert_digest, check_lock, check_skiplock, lock_guest, still_exists, still_unlocked,
                   task_type, unlock_guest)
from .disks import allocate_volume, check_storage, copy_progress, disk_volid, is_cdrom, next_unused_key, replace_file


SIZE_RE = re.compile(r"^(\+)?(\d+(?:\.\d+)?)([KMGT])?$")


def resize(ctx, guest: Guest, p: dict) -> str:
    """PUT .../resize -> `resize` task; errors (locked, missing disk, shrinking) are task errors as in PVE."""
    cluster: Cluster = ctx.cluster
    ctx.check(f"/vms/{guest.vmid}", "VM.Config.Disk")
    skiplock = check_skiplock(ctx, p)
    disk, size_text = p["disk"], p["size"]
    m = SIZE_RE.match(size_text)
    if not m:
        raise ApiError(400, "Parameter verification failed.", {"size": "value does not match the regex pattern"})
    units = {"K": 1024, "M": MiB, "G": GiB, "T": 1024 * GiB}
    amount = int(float(m.group(2)) * units.get(m.group(3) or "", 1))
    with cluster.lock:
        assert_digest(guest, p.get("digest"))

    def worker(t):
        t.checkpoint()
        with cluster.lock:
            still_unlocked(cluster, guest, skiplock)
            value = guest.config.get(disk)
            if value is None:
                raise TaskError(f"disk '{disk}' does not exist")
            if is_cdrom(value):
                raise TaskError("you can't resize a cdrom")
            volid = disk_volid(disk, str(value))
            vol = cluster.find_volume(volid, guest.node) if volid else None
            if vol is None:
                raise TaskError(f"Could not determine current size of volume '{volid}'")
            new = vol.size + amount if m.group(1) else amount
            if new < vol.size:
                raise TaskError("shrinking disks is not supported")
            if new == vol.size:
                return
            st = cluster.storages[vol.storage]
            free = st.total - cluster.storage_used(vol.storage, vol.node)
            if new - vol.size > free:
                raise TaskError(f"unable to resize volume '{volid}': not enough free space on storage '{vol.storage}'")
        t.sleep(DURATION["resize"])
        with cluster.lock:
            still_exists(cluster, guest)
            vol.size = new
            guest.config[disk] = replace_file(str(guest.config[disk]), volid, new, drop=())
            cluster.log_event(guest.node, ctx.authid, f"update {guest.kind} {guest.vmid}: resize --disk {disk} --size {size_text}")
        if guest.type == "qemu":
            t.log("Image resized.")

    return cluster.tasks.start(node=guest.node, type="resize", id=guest.vmid, user=ctx.authid, worker=worker)


def move_disk(ctx, guest: Guest, p: dict, disk_key: str) -> str:
    """POST .../move_disk (qmmove) or .../move_volume (move_volume): copy to another storage."""
    cluster: Cluster = ctx.cluster
    disk = p[disk_key]
    storage, fmt, delete = p.get("storage"), p.get("format"), bool(p.get("delete"))
    ctx.check(f"/vms/{guest.vmid}", "VM.Config.Disk")
    if "target-vmid" in p or "target-disk" in p or "target-volume" in p:
        raise ApiError(501, "moving a disk to another guest is not implemented in pvesim")
    if not storage:
        raise ApiError(400, "Parameter verification failed.", {"storage": "property is missing and it is not optional"})
    with cluster.lock:
        assert_digest(guest, p.get("digest"))
        check_lock(guest)
        value = guest.config.get(disk)
        if value is None:
            raise ApiError(500, f"disk '{disk}' does not exist")
        if is_cdrom(value):
            raise ApiError(500, "you can't move a cdrom")
        if guest.type == "lxc" and guest.status == "running":
            raise ApiError(500, "cannot move volumes of a running container")
        volid = disk_volid(disk, str(value))
        src = cluster.find_volume(volid, guest.node) if volid else None
        if src is None:
            raise ApiError(500, f"volume '{volid}' does not exist")
        if src.storage == storage and (fmt is None or fmt == src.format):
            raise ApiError(500, "you can't move to the same storage with same format")
        if delete and any(disk_volid(k, str(v)) == volid for s in guest.snapshots.values() for k, v in s.config.items()
                          if is_disk_key(k) or k.startswith("mp")):
            raise ApiError(500, "you can't move a disk with snapshots and delete the source")
        check_storage(cluster, storage, guest.node, "images" if guest.type == "qemu" else "rootdir")
        ctx.check(f"/storage/{storage}", "Datastore.AllocateSpace")
    running = guest.status == "running"
    if guest.type == "lxc":
        lock_guest(cluster, guest, "disk")  # pve-container holds `lock: disk` during move_volume

    def worker(t):
        try:
            _move(t)
        finally:
            if guest.type == "lxc":
                unlock_guest(cluster, guest, "disk")

    def _move(t):
        t.checkpoint()
        new = allocate_volume(cluster, vmid=guest.vmid, node=guest.node, storage=storage, size=src.size,
                              content=src.content, fmt=fmt or (src.format if src.format in ("raw", "qcow2", "vmdk") else None))
        try:
            seconds = min(max(src.size / GiB * 0.45, 3.0), 40.0)
            if running and guest.type == "qemu":
                t.log(f"create full clone of drive {disk} ({volid})")
                t.log(f"drive mirror is starting for drive-{disk}")
                copy_progress(t, src.size, seconds, mirror=disk)
                t.log("all 'mirror' jobs are ready")
                t.log(f"drive-{disk}: Completing block job...")
                t.log(f"drive-{disk}: Completed successfully.")
                t.log(f"drive-{disk}: mirror-job finished")
            else:
                t.log(f"create full clone of drive {disk} ({volid})" if guest.type == "qemu"
                      else f"moving volume '{volid}' to '{storage}'")
                copy_progress(t, src.size, seconds)
            with cluster.lock:
                still_exists(cluster, guest)
                guest.config[disk] = replace_file(str(guest.config[disk]), new.volid, src.size, drop=())
                if delete:
                    cluster.remove_volume(volid, guest.node)
                else:
                    guest.config[next_unused_key(guest.config)] = volid
        except BaseException:
            with cluster.lock:
                cluster.remove_volume(new.volid, guest.node)
            raise

    return cluster.tasks.start(node=guest.node, type=task_type(guest, "move"), id=guest.vmid, user=ctx.authid,
                               worker=worker)
