"""POST .../clone and .../template: copy or link a guest's disks, turn a guest into a template."""

from __future__ import annotations

import uuid

from ...errors import ApiError
from ...params import parse_props
from ...scenario import is_disk_key, parse_size
from ...state import GiB, Cluster, Guest
from .base import DURATION, check_lock, still_exists, task_type, unlock_guest
from .config import regenerate_macs
from .disks import (allocate_volume, check_storage, copy_progress, disk_volid, is_cdrom, replace_file,
                    storage_supports)
from .create import add_to_pool, check_pool, check_vm_allocate, discard_new_guest, new_guest, smbios_uuid


def clone(ctx, guest: Guest, p: dict) -> str:
    """POST .../clone -> qmclone/vzclone (task id = source vmid). New config holds `lock: clone`."""
    cluster: Cluster = ctx.cluster
    newid, pool, target = p["newid"], p.get("pool"), p.get("target")
    storage, fmt = p.get("storage"), p.get("format")
    ctx.check(f"/vms/{guest.vmid}", "VM.Clone")
    check_vm_allocate(ctx, newid, pool)
    check_pool(cluster, pool)
    if newid == guest.vmid:
        raise ApiError(400, "Parameter verification failed.", {"newid": "new VMID is same as old VMID"})
    new_node = target or guest.node
    if target:
        node = cluster.nodes.get(target)
        if node is None:
            raise ApiError(500, f"no such cluster node '{target}'")
    with cluster.lock:
        if newid in cluster.guests:
            raise ApiError(500, f"unable to create {guest.kind} {newid}: config file already exists")
        check_lock(guest)
        snapname = p.get("snapname")
        if snapname and snapname not in guest.snapshots:
            raise ApiError(500, f"snapshot '{snapname}' does not exist")
        source = dict(guest.snapshots[snapname].config if snapname else guest.config)
        full = bool(p["full"]) if "full" in p else not guest.is_template
        if not full and storage:
            raise ApiError(500, "parameter 'storage' not allowed for linked clones")
        if not full and fmt:
            raise ApiError(500, "parameter 'format' not allowed for linked clones")
        if storage:
            check_storage(cluster, storage, new_node, "images" if guest.type == "qemu" else "rootdir")
        disks: list[tuple[str, str, str]] = []  # (key, value, volid)
        shared = True
        for key, value in source.items():
            if not (is_disk_key(key) or key.startswith("mp")) or key.startswith("unused"):
                continue
            value = str(value)
            if is_cdrom(value) and "cloudinit" not in value:
                continue
            volid = disk_volid(key, value)
            if not volid:
                continue
            st = cluster.storages.get(volid.split(":", 1)[0])
            if st is not None and not st.shared:
                shared = False
            linked = not full and "cloudinit" not in value
            if linked and not storage_supports(cluster, volid, "clone", guest.is_template):
                raise ApiError(500, f"Linked clone feature is not supported for '{volid}' ({key})")
            disks.append((key, value, volid))
        disks.sort()  # PVE walks the drives in key order
        if storage and not cluster.storages[storage].shared:
            shared = False
        if target and target != guest.node and not shared:
            raise ApiError(500, f"can't clone {guest.kind} to node '{target}' ({guest.kind} uses local storage)")
        config = {k: v for k, v in source.items()
                  if k not in ("lock", "template", "vmstate", "runningmachine", "runningcpu", "snaptime", "parent",
                               "description")
                  and not k.startswith("unused") and k not in {d[0] for d in disks}}
        if guest.type == "qemu":
            config["name"] = p.get("name") or f"Copy-of-VM-{source.get('name', guest.vmid)}"
            config["smbios1"] = smbios_uuid()
            if "vmgenid" in config:
                config["vmgenid"] = str(uuid.uuid4())
        else:
            config["hostname"] = p.get("hostname") or source.get("hostname", f"CT{newid}")
        if p.get("description") is not None:
            config["description"] = p["description"]
        # qemu: the new config holds `lock: clone`; pve-container creates it with `lock: create`
        # and holds `lock: disk` on the source CT while its volumes are copied.
        config["lock"] = "clone" if guest.type == "qemu" else "create"
        clone_guest = new_guest(cluster, vmid=newid, type_=guest.type, node=new_node, config=config)
        regenerate_macs(cluster, clone_guest)
        source_lock = "disk" if guest.type == "lxc" else None
        if source_lock:
            guest.config["lock"] = source_lock
    running = guest.status == "running"

    def worker(t):
        created: list[str] = []
        try:
            t.checkpoint()
            for key, value, volid in disks:
                src = cluster.find_volume(volid, guest.node)
                size = src.size if src else parse_size(parse_props(value).get("size", "8G"))
                target_storage = storage or volid.split(":", 1)[0]
                cloudinit = "cloudinit" in value
                if full or cloudinit:
                    t.log(f"create full clone of drive {key} ({volid})")
                    if cloudinit:
                        vol = allocate_volume(cluster, vmid=newid, node=new_node, storage=target_storage, size=size,
                                              content="images", name=f"vm-{newid}-cloudinit")
                    else:
                        vol = allocate_volume(cluster, vmid=newid, node=new_node, storage=target_storage, size=size,
                                              content=src.content if src else "images", fmt=fmt)
                    created.append(vol.volid)
                    if not cloudinit:
                        seconds = min(max(size / GiB * 0.6, 4.0), 40.0)
                        mirror = key if running and guest.type == "qemu" else None
                        if mirror:
                            t.log(f"drive mirror is starting for drive-{key}")
                        copy_progress(t, size, seconds, mirror=mirror)
                        if mirror:
                            t.log("all 'mirror' jobs are ready")
                else:
                    t.log(f"create linked clone of drive {key} ({volid})")
                    t.sleep(DURATION["clone_linked"] / max(len(disks), 1))
                    vol = allocate_volume(cluster, vmid=newid, node=new_node, storage=target_storage, size=size,
                                          content=src.content if src else "images", parent=volid,
                                          fmt=src.format if src and src.format not in ("subvol",) else None)
                    created.append(vol.volid)
                with cluster.lock:
                    still_exists(cluster, clone_guest)
                    clone_guest.config[key] = replace_file(value, vol.volid, None if cloudinit else size,
                                                            drop=("import-from",))
            t.sleep(0.5)
            with cluster.lock:
                still_exists(cluster, clone_guest)
                clone_guest.config.pop("lock", None)
                add_to_pool(cluster, newid, pool)
                cluster.log_event(guest.node, ctx.authid, f"clone {guest.kind} {guest.vmid} to {newid}")
        except BaseException:
            discard_new_guest(cluster, clone_guest, created)
            raise
        finally:
            if source_lock:
                unlock_guest(cluster, guest, source_lock)

    return cluster.tasks.start(node=guest.node, type=task_type(guest, "clone"), id=guest.vmid, user=ctx.authid,
                               worker=worker)


def _base_name(volid: str) -> str:
    """`st:vm-100-disk-0` -> `st:base-100-disk-0` (`subvol-` -> `basevol-`; file storages keep their folder)."""
    storage, volname = volid.split(":", 1)
    folder, _, name = volname.rpartition("/")
    for old, new in (("vm-", "base-"), ("subvol-", "basevol-")):
        if name.startswith(old):
            name = new + name[len(old):]
            break
    return f"{storage}:{folder + '/' if folder else ''}{name}"


def convert_to_template(cluster: Cluster, guest: Guest, disk: str | None = None) -> None:
    """Rename the guest's disks to base-<vmid>-disk-N volumes and mark it `template: 1`."""
    with cluster.lock:
        for key in list(guest.config):
            if disk and key != disk:
                continue
            value = str(guest.config[key])
            if not (is_disk_key(key) or key.startswith("mp")) or key.startswith("unused") or is_cdrom(value):
                continue
            volid = disk_volid(key, value)
            if not volid or volid.rsplit("/", 1)[-1].split(":")[-1].startswith(("base-", "basevol-")):
                continue
            vol = cluster.find_volume(volid, guest.node)
            new_volid = _base_name(volid)
            if vol is not None:
                cluster.remove_volume(volid, guest.node)
                vol.volid = new_volid
                cluster.add_volume(vol)
            guest.config[key] = value.replace(volid, new_volid, 1)
        guest.config["template"] = 1


def template(ctx, guest: Guest, p: dict, *, sync: bool = False) -> str | None:
    """POST .../template: qemu -> qmtemplate task; lxc -> converted at once, null (a vztemplate task is logged)."""
    cluster: Cluster = ctx.cluster
    ctx.check(f"/vms/{guest.vmid}", "VM.Allocate")
    disk = p.get("disk")
    with cluster.lock:
        check_lock(guest)
        if guest.snapshots:
            raise ApiError(500, f"unable to create template, because {guest.kind} contains snapshots")
        if guest.is_template and not disk:
            raise ApiError(500, "you can't convert a template to a template")
        if guest.status == "running":
            raise ApiError(500, "you can't convert a VM to template if VM is running" if guest.type == "qemu"
                           else "you can't convert a CT to template if the CT is running")
        if sync:
            convert_to_template(cluster, guest, disk)
            cluster.tasks.sync_task(node=guest.node, type=task_type(guest, "template"), id=guest.vmid,
                                    user=ctx.authid, lines=[])
            return None
        guest.config["template"] = 1

    def worker(t):
        t.sleep(DURATION["template"])
        with cluster.lock:
            still_exists(cluster, guest)
            convert_to_template(cluster, guest, disk)

    return cluster.tasks.start(node=guest.node, type=task_type(guest, "template"), id=guest.vmid, user=ctx.authid,
                               worker=worker)
