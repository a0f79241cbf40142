"""Restore of a backup archive into a new or existing guest (qmrestore/vzrestore)."""

from __future__ import annotations

import copy
from datetime import datetime

from ...errors import ApiError, TaskError
from ...scenario import is_disk_key
from ...state import MiB, Guest, Volume
from .. import storage as storage_api
from ..guests import locked_message, regenerate_macs
from .common import _bad, _human, backup_disks
from .vzdump import _archive_entry, config_text, storage_api_format


# ---- restore -----------------------------------------------------------------------------------

_RESTORE_SKIP = {"archive", "storage", "force", "unique", "pool", "vmid", "node", "live-restore", "bwlimit", "start",
                 "ostemplate", "restore", "ha-managed", "ignore-unpack-errors", "password",
                 "ssh-public-keys", "import-working-storage"}


def restore_guest(ctx, kind, node=None, vmid=None, archive=None, storage=None, force=False, unique=False,
                  pool=None, params=None) -> str:
    """Start a qmrestore/vzrestore task (PVE's create-with-archive); sync errors as ApiError.

    Guarantees: the guest exists with `lock: create` from the moment this returns until the
    task ends; its config comes from the archive (with `params` overriding simple keys); its
    disks are new volumes on `storage` (or on the disks' original storages); `force=1`
    replaces an existing stopped guest of the same type and frees its old volumes. A failed
    restore leaves no new guest and no new volumes behind.
    """
    if isinstance(kind, dict):  # also callable as restore_guest(ctx, create_params, type)
        p, kind = kind, node
        node, vmid, storage, pool = p["node"], int(p["vmid"]), p.get("storage"), p.get("pool")
        archive = p.get("archive") if kind == "qemu" else p.get("ostemplate")
        force, unique, params = bool(p.get("force")), bool(p.get("unique")), p
    params = params or {}
    cluster = ctx.cluster
    word = "VM" if kind == "qemu" else "CT"
    emsg = f"unable to restore {word} {vmid} -"
    with cluster.lock:
        if ":" not in archive:
            raise ApiError(500, f"{emsg} can't find file '{archive}'")
        try:
            vol, info = _archive_entry(cluster, archive, node)
        except ApiError as exc:
            raise ApiError(500, f"{emsg} {exc.message}" if "does not exist" in exc.message or "not available" in exc.message
                           or "disabled" in exc.message else exc.message) from None
        ctx.check(f"/storage/{vol.storage}", "Datastore.AllocateSpace")
        if info is None:
            raise ApiError(500, f"{emsg} unable to read configuration from archive '{archive}'")
        if info["type"] != kind:
            raise ApiError(500, f"{emsg} archive '{archive}' is a {'VM' if info['type'] == 'qemu' else 'CT'} backup, "
                                f"use {'qmrestore' if info['type'] == 'qemu' else 'pct restore'}")
        if storage:
            try:
                target = cluster.storage(storage, node)
            except ApiError as exc:
                raise ApiError(500, f"{emsg} {exc.message}") from None
            needed = "images" if kind == "qemu" else "rootdir"
            if needed not in target.content:
                _bad("storage", f"storage '{storage}' does not support {'vm images' if kind == 'qemu' else 'container directories'}")
            ctx.check(f"/storage/{storage}", "Datastore.AllocateSpace")
        existing = cluster.guests.get(vmid)
        if existing is not None:
            if not force:
                raise ApiError(500, f"{emsg} {existing.kind} {vmid} already exists on node '{existing.node}'")
            if existing.type != kind or existing.node != node:
                raise ApiError(500, f"{emsg} {existing.kind} {vmid} already exists on node '{existing.node}'")
            ctx.check(f"/vms/{vmid}", "VM.Backup")
            if existing.lock:
                raise ApiError(500, f"{emsg} {locked_message(existing)}")
            if str(existing.config.get("protection", "0")) == "1":
                raise ApiError(500, f"{emsg} protection mode enabled")
            if existing.status == "running":
                raise ApiError(500, f"{emsg} {'vm' if kind == 'qemu' else 'CT'} is running")
            existing.config["lock"] = "create"
            guest = existing
            old_volumes = [v for _, v, *_ in backup_disks(existing) if v]
        else:
            guest = Guest(vmid=vmid, type=kind, node=node, config={"lock": "create"})
            cluster.guests[vmid] = guest
            old_volumes = []
        if pool and pool not in cluster.pools:
            raise ApiError(500, f"{emsg} pool '{pool}' does not exist")
        backup_config = copy.deepcopy(info["config"])
    start_after = bool(params.get("start"))
    task_type = "qmrestore" if kind == "qemu" else "vzrestore"

    def worker(t):
        created: list[Volume] = []
        ok = False
        try:
            t.sleep(0.5)
            config = dict(backup_config)
            path = storage_api.volume_path(cluster.storages[vol.storage], archive.split(":", 1)[1])
            if kind == "qemu":
                decomp = {"zst": "zstd -q -d -c", "gz": "zcat", "lzo": "lzop -d -c"}.get(path.rsplit(".", 1)[-1])
                t.log(f"restore vma archive: {decomp + ' ' + path + ' | ' if decomp else ''}vma extract -v -r "
                      f"/var/tmp/vzdumptmp{t.task.pid}.fifo {'-' if decomp else path} /var/tmp/vzdumptmp{t.task.pid}")
                t.log(f"CFG: size: {len(config_text(kind, config))} name: qemu-server.conf")
            else:
                t.log(f"recovering backed-up configuration from '{archive}'")
            with cluster.lock:
                for volid in old_volumes:
                    cluster.remove_volume(volid, node)
                    cluster.remove_volume(volid, None)
            total = 0
            mapping = []
            for key, volid, size, included, _ in backup_disks(Guest(vmid=vmid, type=kind, node=node, config=config)):
                if not included:
                    config.pop(key, None)
                    continue
                sid = storage or (volid.split(":", 1)[0] if ":" in volid else None)
                with cluster.lock:
                    if sid is None or sid not in cluster.storages:
                        raise TaskError(f"storage '{sid}' does not exist")
                    new = storage_api.task_allocate(cluster, sid, node, vmid, size,
                                                    content="images" if kind == "qemu" else "rootdir")
                created.append(new)
                total += size
                value = str(config[key])
                parts = value.split(",")
                first = parts[0]
                if "=" in first and first.split("=", 1)[0] in ("file", "volume"):
                    parts = parts[1:]
                else:
                    parts = parts[1:]
                config[key] = ",".join([new.volid] + parts)
                mapping.append((key, new, size))
                if kind == "qemu":
                    t.log(f"DEV: dev_id={len(mapping)} size: {size} devname: drive-{key}")
                    t.log(f"new volume ID is '{new.volid}'")
                else:
                    t.log(f"allocated volume {new.volid} ({storage_api_format(size)}) for {key}")
            for key in [k for k in config if k.startswith("unused")]:
                config.pop(key)
            for key, value in list(config.items()):
                if "cloudinit" in str(value) and "media=cdrom" in str(value):
                    sid = storage or str(value).split(":", 1)[0]
                    with cluster.lock:
                        ci = storage_api.task_allocate(cluster, sid, node, vmid, 4 * MiB, name=f"vm-{vmid}-cloudinit"
                                                       + (".qcow2" if cluster.storages[sid].type in storage_api.FILE_BASED else ""),
                                                       fmt="qcow2" if cluster.storages[sid].type in storage_api.FILE_BASED else None)
                    created.append(ci)
                    config[key] = ",".join([ci.volid] + str(value).split(",")[1:])
            if kind == "qemu":
                t.log(f"CTIME: {datetime.fromtimestamp(vol.ctime).strftime('%a %b %d %H:%M:%S %Y')}")
                for key, new, _ in mapping:
                    t.log(f"map 'drive-{key}' to '{storage_api.volume_path(cluster.storages[new.storage], new.volid.split(':', 1)[1])}' (write zeros = 0)")
            else:
                t.log(f"restoring '{archive}' now..")
            steps = 10
            seconds = max(total / (2000 * MiB), 2.0)
            for i in range(1, steps + 1):
                t.sleep(seconds / steps)
                if kind == "qemu":
                    t.log(f"progress {i * 10}% (read {total * i // steps} bytes, duration {int(seconds * i / steps)} sec)")
            if kind == "qemu":
                sparse = int(total * 0.3)
                t.log(f"total bytes read {total}, sparse bytes {sparse} ({sparse * 100 / max(total, 1):.1f}%)")
                t.log("space reduction due to 4K zero blocks 0.42%")
                t.log("rescan volumes...")
            else:
                t.log(f"Total bytes read: {total} ({_human(total)}, {_human(2000 * MiB)}/s)")
                t.log("merging backed-up and given configuration..")
            for key, value in params.items():
                if key in _RESTORE_SKIP or key.startswith("mp") or is_disk_key(key) or value is None:
                    continue
                config[key] = value
            if unique:
                with cluster.lock:
                    fresh = Guest(vmid=vmid, type=kind, node=node, config=config)
                    regenerate_macs(cluster, fresh)
                    config = fresh.config
            with cluster.lock:
                config["lock"] = "create"
                guest.config = config
                guest.snapshots = {}
                if pool:
                    for other in cluster.pools.values():
                        other["vms"].discard(vmid)
                    cluster.pools[pool]["vms"].add(vmid)
            ok = True
        finally:
            with cluster.lock:
                if not ok:
                    for new in created:
                        cluster.remove_volume(new.volid, new.node)
                    if existing is None and cluster.guests.get(vmid) is guest:
                        del cluster.guests[vmid]
                    else:
                        guest.config.pop("lock", None)
                else:
                    guest.config.pop("lock", None)
        if start_after:
            t.log(f"starting {'VM' if kind == 'qemu' else 'CT'} {vmid}")
            with cluster.lock:
                cluster.guest_started(guest)

    return cluster.tasks.start(node=node, type=task_type, id=vmid, user=ctx.authid, worker=worker)
