"""POST /nodes/{node}/vzdump and its task, pruning after a backup, vzdump/defaults and vzdump/extractconfig."""

from __future__ import annotations

import threading
import time
import uuid
from datetime import datetime, timedelta

from ...errors import ApiError, TaskError
from ...params import P, parse_props
from ...router import api
from ...scenario import is_disk_key
from ...state import MiB, Cluster, Volume
from .. import storage as storage_api
from ..guests import unlock_guest
from .common import (COMPRESS_EXT, COMPRESS_RATIO, ROOT_ONLY, VZDUMP_DEFAULTS, VZDUMP_OPTS, _bad, _clean_config,
                     _duration, _hms, _human, _sim_elapsed, backup_disks, command_line, included_guests, set_lock,
                     verify_vzdump_parameters)


# ---- vzdump ------------------------------------------------------------------------------------

@api.post("/nodes/{node}/vzdump", params={**VZDUMP_OPTS, "node": P.node(optional=True), "stdout": P.boolean(),
                                           "job-id": P.string(pattern=r"\S+", max_length=50)}, proxyto="node")
def vzdump(ctx, p):
    cluster, node = ctx.cluster, p["node"]
    if p.get("stdout"):
        _bad("stdout", "option is only allowed on the command line interface.")
    for key in ROOT_ONLY:
        if key in p and not ctx.is_root:
            _bad(key, "Only root may set this option.")
    verify_vzdump_parameters(p)
    with cluster.lock:
        per_node = included_guests(cluster, {**p, "node": None})
        local = sorted(per_node.pop(node, []) + per_node.pop("", []))
        if not local and not p.get("all"):
            return "OK"  # PVE: silent exit when the guests run on other nodes
        if p.get("storage"):
            ctx.check(f"/storage/{p['storage']}", "Datastore.AllocateSpace")
        if "prune-backups" in p:
            ctx.check(f"/storage/{p.get('storage', 'local')}", "Datastore.Allocate")
        if p.get("vmid"):
            for vmid in local:
                ctx.check(f"/vms/{vmid}", "VM.Backup")
        else:
            local = [v for v in local if ctx.has(f"/vms/{v}", "VM.Backup")]
    task_id = str(local[0]) if len(local) == 1 else ""
    return start_backup_task(cluster, node, local, p, ctx.authid, task_id)


def start_backup_task(cluster: Cluster, node: str, vmids: list[int], given: dict, user: str, task_id: str = "") -> str:
    """Start a `vzdump` task backing up `vmids` on `node` with the caller's options."""
    given = {k: v for k, v in given.items() if k != "node"}
    cmdline = command_line(vmids, {**given, "node": node})
    opts = {**VZDUMP_DEFAULTS, **given}
    opts.setdefault("storage", "local")

    def worker(t):
        _run_backup_job(cluster, t, node, vmids, opts, cmdline)

    return cluster.tasks.start(node=node, type="vzdump", id=task_id, user=user, worker=worker)


def _storage_for_backup(cluster: Cluster, sid: str, node: str):
    try:
        st = cluster.storage(sid, node)
    except ApiError as exc:
        raise TaskError(f"could not get storage information for '{sid}': {exc.message}") from None
    if "backup" not in st.content:
        raise TaskError(f"could not get storage information for '{sid}': can't use storage '{sid}' for backups - wrong content type")
    return st


def _run_backup_job(cluster: Cluster, t, node: str, vmids: list[int], opts: dict, cmdline: str) -> None:
    st = _storage_for_backup(cluster, opts["storage"], node)
    node_lock = cluster.vzdump_locks.setdefault(node, threading.Lock())
    if not node_lock.acquire(blocking=False):
        t.log("INFO: trying to get global lock - waiting...")
        waited, limit = 0.0, float(opts.get("lockwait", 180)) * 60
        while not node_lock.acquire(blocking=False):
            if waited >= limit:
                raise TaskError("can't acquire lock '/var/run/vzdump.lock' - got timeout")
            t.sleep(2)
            waited += 2
        t.log("INFO: got global lock")
    try:
        t.log(f"INFO: starting new backup job: {cmdline}")
        errors = 0
        for vmid in vmids:
            if not _backup_one(cluster, t, node, vmid, st, opts):
                errors += 1
        if errors:
            raise TaskError("job errors")
        t.log("INFO: Backup job finished successfully")
    finally:
        node_lock.release()


def _backup_one(cluster: Cluster, t, node: str, vmid: int, st, opts: dict) -> bool:
    """Back up one guest; logs `ERROR: Backup of VM <id> failed - <msg>` and returns False on failure."""
    start = time.time()
    guest = cluster.guests.get(vmid)
    kind = guest.type if guest else "qemu"
    t.log(f"INFO: Starting Backup of VM {vmid} ({kind})")
    t.log(f"INFO: Backup started at {time.strftime('%Y-%m-%d %H:%M:%S')}")
    locked = False
    stopped_for_backup = paused = False
    try:
        with cluster.lock:
            if guest is None or cluster.guests.get(vmid) is not guest:
                raise TaskError(f"unable to find VM '{vmid}'" if guest is None else f"guest {vmid} vanished")
            if guest.node != node:
                raise TaskError(f"guest {vmid} is not on node '{node}'")
            try:
                set_lock(guest, "backup")
            except ApiError as exc:
                raise TaskError(exc.message) from None
            locked = True
            running = guest.status == "running"
            config = _clean_config(guest.config)
        disks = backup_disks(guest)
        mode = opts.get("mode", "snapshot")
        if not running and mode != "stop":
            mode = "stop"
        t.log(f"INFO: status = {'running' if running else 'stopped'}")
        if kind == "qemu":
            t.log(f"INFO: VM Name: {guest.name}")
            for key, volid, size, included, reason in disks:
                if included:
                    t.log(f"INFO: include disk '{key}' '{volid}' {storage_api_format(size)}")
                else:
                    t.log(f"INFO: exclude disk '{key}' '{volid}' ({reason})")
        else:
            t.log(f"INFO: CT Name: {guest.name}")
            for key, volid, size, included, reason in disks:
                mp = "/" if key == "rootfs" else parse_props(str(guest.config[key])).get("mp", "?")
                if included:
                    t.log(f"INFO: including mount point {key} ('{mp}') in backup")
                else:
                    t.log(f"INFO: excluding volume mount point {key} ('{mp}') from backup (disabled)")
        t.log(f"INFO: backup mode: {mode}")
        t.log(f"INFO: ionice priority: {opts.get('ionice', 7)}")
        if mode == "stop" and running:
            t.log("INFO: stopping virtual guest")
            t.sleep(5)
            with cluster.lock:
                cluster.guest_stopped(guest)
            stopped_for_backup = True
        elif mode == "suspend" and running:
            t.log("INFO: suspending guest")
            with cluster.lock:
                guest.qmpstatus = "paused"
            paused = True
        elif kind == "lxc" and mode == "snapshot":
            t.log("INFO: create storage snapshot 'vzdump'")
        total = sum(size for _, _, size, included, _ in disks if included) or 512 * MiB
        compress = str(opts.get("compress", "0"))
        stamp = datetime.now()
        ext = ("vma" if kind == "qemu" else "tar") + COMPRESS_EXT[compress]
        fmt = ext
        with cluster.lock:
            holder = None if st.shared else node
            while True:
                name = f"vzdump-{kind}-{vmid}-{stamp.strftime('%Y_%m_%d-%H_%M_%S')}.{ext}"
                volid = f"{st.storage}:backup/{name}"
                if cluster.find_volume(volid, holder) is None:
                    break
                stamp += timedelta(seconds=1)  # two runs within one second: next free name
        path = storage_api.volume_path(st, f"backup/{name}")
        t.log(f"INFO: creating vzdump archive '{path}'")
        if kind == "qemu":
            if not running or stopped_for_backup:
                t.log("INFO: starting kvm to execute backup task")
            t.log(f"INFO: started backup task '{uuid.uuid4()}'")
            if paused or (running and mode == "snapshot"):
                t.log("INFO: resuming VM again")
                if paused:
                    with cluster.lock:
                        guest.qmpstatus = "running"
                    paused = False
        read_speed = 2500 * MiB  # rbd/nvme source with zstd: vzdump reads ~2-3 GB/s
        seconds = max(total / read_speed, 2.0)
        steps = 10
        for i in range(1, steps + 1):
            t.sleep(seconds / steps)
            if kind == "qemu":
                done = total * i // steps
                pct = i * 100 // steps
                elapsed = seconds * i / steps
                write = read_speed * COMPRESS_RATIO[compress]
                t.log(f"INFO: {pct:3d}% ({_human(done)} of {_human(total)}) in {_duration(elapsed)}, "
                      f"read: {_human(read_speed)}/s, write: {_human(write)}/s")
        size = int(total * COMPRESS_RATIO[compress])
        with cluster.lock:
            used = cluster.storage_used(st.storage, None if st.shared else node)
            if used + size > st.total:
                raise TaskError("vma_queue_write: write error - No space left on device" if kind == "qemu"
                                else "command 'tar' failed: write error: No space left on device")
        if kind == "qemu":
            sparse = int(total * 0.3)
            t.log(f"INFO: backup is sparse: {_human(sparse)} ({sparse * 100 // total}%) total zero data")
            t.log(f"INFO: transferred {_human(total)} in {int(seconds)} seconds ({_human(total / seconds)}/s)")
        else:
            t.log(f"INFO: Total bytes written: {total} ({_human(total).replace(' ', '')}, "
                  f"{_human(read_speed).replace(' ', '')}/s)")
        if kind == "qemu" and (stopped_for_backup or not running):
            t.log("INFO: stopping kvm after backup task")
        t.log(f"INFO: archive file size: {size / 1e9:.2f}GB" if size >= 1e9 else f"INFO: archive file size: {size // 10**6}MB")
        notes = None
        if opts.get("notes-template"):
            notes = (opts["notes-template"].replace("{{cluster}}", cluster.name).replace("{{guestname}}", guest.name)
                     .replace("{{node}}", node).replace("{{vmid}}", str(vmid)).replace("\\n", "\n").replace("\\\\", "\\"))
            t.log("INFO: adding notes to backup")
        with cluster.lock:
            cluster.add_volume(Volume(volid=volid, storage=st.storage, content="backup", size=size, format=fmt,
                                            vmid=vmid, node=holder, notes=notes, protected=bool(opts.get("protected")),
                                            ctime=int(stamp.timestamp())))
            cluster.backup_archives[cluster.volume_key(volid, holder)] = {"type": kind, "config": config}
        if opts.get("protected"):
            t.log("INFO: marking backup as protected")
        if kind == "lxc" and mode == "snapshot" and running:
            t.log("INFO: cleanup temporary 'vzdump' snapshot")
        if stopped_for_backup:
            t.log("INFO: restarting vm")
            with cluster.lock:
                cluster.guest_started(guest)
            stopped_for_backup = False
            t.log(f"INFO: guest is online again after {_sim_elapsed(cluster, start)} seconds")
        if int(opts.get("remove", 1)) and not opts.get("protected"):
            _prune_after_backup(cluster, t, st, node, vmid, kind, opts)
        t.log(f"INFO: Finished Backup of VM {vmid} ({_hms(_sim_elapsed(cluster, start))})")
        t.log(f"INFO: Backup finished at {time.strftime('%Y-%m-%d %H:%M:%S')}")
        return True
    except TaskError as exc:
        t.log(f"ERROR: Backup of VM {vmid} failed - {exc}")
        t.log(f"INFO: Failed at {time.strftime('%Y-%m-%d %H:%M:%S')}")
        return False
    finally:
        with cluster.lock:
            if guest is not None and stopped_for_backup and guest.status != "running":
                try:
                    cluster.guest_started(guest)
                except Exception:  # a start hook refused: the guest stays stopped, as after a failed restart
                    pass
            if guest is not None and paused:
                guest.qmpstatus = "running"
        if locked:
            unlock_guest(cluster, guest, "backup")


def storage_api_format(size: int) -> str:
    from ...scenario import format_size
    return format_size(size)


def _prune_after_backup(cluster: Cluster, t, st, node: str, vmid: int, kind: str, opts: dict) -> None:
    options = storage_api.prune_options(cluster, st, opts.get("prune-backups") if "prune-backups" in opts
                                        and opts["prune-backups"] != VZDUMP_DEFAULTS["prune-backups"] else None)
    if options.get("keep-all") or not any(options.get(k) for k in storage_api.PRUNE_KEYS[1:]):
        return
    holder = None if st.shared else node
    with cluster.lock:
        backups = [v for v in storage_api.volumes_on(cluster, st, node)
                   if v.content == "backup" and v.vmid == vmid and storage_api.backup_subtype(v) == kind]
        marks = storage_api.prune_marks(backups, options)
    spec = ",".join(f"{k}={v}" for k, v in options.items())
    t.log(f"INFO: prune older backups with retention: {spec}")
    removed = 0
    for entry in marks:
        if entry["mark"] == "remove":
            t.log(f"INFO: removing backup '{entry['volid']}'")
            with cluster.lock:
                cluster.remove_volume(entry["volid"], holder)
                cluster.backup_archives.pop(cluster.volume_key(entry["volid"], holder), None)
            removed += 1
    t.log(f"INFO: pruned {removed} backup(s) not covered by keep-retention policy")


@api.get("/nodes/{node}/vzdump/defaults", params={"node": P.node(), "storage": P.storage()}, proxyto="node")
def vzdump_defaults(ctx, p):
    cluster = ctx.cluster
    out = dict(VZDUMP_DEFAULTS)
    out["storage"] = p.get("storage", "local")
    ctx.check(f"/storage/{out['storage']}", "Datastore.Audit", "Datastore.AllocateSpace", any=True)
    with cluster.lock:
        st = cluster.storages.get(out["storage"])
        if st is None:
            raise ApiError(500, f"storage '{out['storage']}' does not exist")
        if "prune-backups" in st.extra:
            out["prune-backups"] = st.extra["prune-backups"]
    if not ctx.has(f"/nodes/{p['node']}", "Sys.Audit"):
        out.pop("ionice", None)
    return out


def _archive_entry(cluster: Cluster, volid: str, node: str) -> tuple[Volume, dict | None]:
    sid = volid.split(":", 1)[0]
    st = cluster.storage(sid, node)
    holder = None if st.shared else node
    vol = cluster.find_volume(volid, holder)
    if vol is None or vol.content != "backup":
        raise ApiError(500, f"can't find file '{storage_api.volume_path(st, volid.split(':', 1)[1])}'" if ":" in volid
                       else f"unable to parse volume ID '{volid}'")
    return vol, cluster.backup_archives.get(cluster.volume_key(volid, holder))


def config_text(kind: str, config: dict) -> str:
    lines = []
    if kind == "qemu":
        for key, value in config.items():
            if is_disk_key(key) and "media=cdrom" not in str(value) and not key.startswith("unused"):
                volid = str(value).split(",", 1)[0]
                lines.append(f"#qmdump#map:{key}:drive-{key}:{volid.split(':', 1)[0]}:raw:")
    for key, value in config.items():
        if key == "description":
            lines = [f"#{line}" for line in str(value).splitlines()] + lines
            continue
        lines.append(f"{key}: {value}")
    return "\n".join(lines) + "\n"


@api.get("/nodes/{node}/vzdump/extractconfig", params={"node": P.node(), "volume": P.string(optional=False)},
         proxyto="node")
def extractconfig(ctx, p):
    cluster = ctx.cluster
    volid = p["volume"]
    storage_api.parse_volume(volid)
    with cluster.lock:
        vol, archive = _archive_entry(cluster, volid, p["node"])
        ctx.check(f"/storage/{vol.storage}", "Datastore.AllocateSpace")
        if vol.vmid is not None:
            ctx.check(f"/vms/{vol.vmid}", "VM.Backup")
        if archive is None:
            raise ApiError(500, "unable to extract configuration for backup format ''")
        return config_text(archive["type"], archive["config"])
