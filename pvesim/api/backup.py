"""Backups: vzdump, vzdump defaults/extractconfig, backup jobs (/cluster/backup), backup info,
schedule analysis, a scheduler running due jobs, and restore (pve-semantics §9).

`restore_guest(ctx, kind, node, vmid, archive, storage, force, unique, pool, params)` is what
the qemu/lxc create handlers call for `archive=` / `restore=1`.
"""

from __future__ import annotations

import copy
import re
import threading
import time
import uuid
from datetime import datetime, timedelta, timezone

from ..errors import ApiError, TaskError
from ..params import P, PropString, parse_props
from ..router import api
from ..scenario import is_disk_key, parse_size
from ..state import MiB, Cluster, Guest, Volume
from . import storage as storage_api
from .guests import check_lock, locked_message, regenerate_macs, unlock_guest

# ---- vzdump option schema (PVE::VZDump::Common json_config_properties) ------------------------

FLEECING = PropString({"enabled": P.boolean(), "storage": P.storage()}, default_key="enabled")
PERFORMANCE = PropString({"max-workers": P.integer(minimum=1, maximum=256), "pbs-entries-max": P.integer(minimum=1)})

VZDUMP_OPTS = {
    "all": P.boolean(), "bwlimit": P.integer(minimum=0), "compress": P.enum(["0", "1", "gzip", "lzo", "zstd"]),
    "dumpdir": P.string(), "exclude": P.string(format="pve-vmid-list"), "exclude-path": P.array(),
    "fleecing": P.string(prop=FLEECING), "ionice": P.integer(minimum=0, maximum=8),
    "lockwait": P.integer(minimum=0), "mailnotification": P.enum(["always", "failure"]), "mailto": P.string(),
    "maxfiles": P.integer(minimum=1), "mode": P.enum(["snapshot", "suspend", "stop"]),
    "notes-template": P.string(max_length=1024),
    "notification-mode": P.enum(["auto", "legacy-sendmail", "notification-system"]),
    "pbs-change-detection-mode": P.enum(["legacy", "data", "metadata"]), "performance": P.string(prop=PERFORMANCE),
    "pigz": P.integer(), "pool": P.string(), "protected": P.boolean(),
    "prune-backups": P.string(prop=storage_api.PRUNE_PROP), "quiet": P.boolean(), "remove": P.boolean(),
    "script": P.string(), "stdexcludes": P.boolean(), "stop": P.boolean(), "stopwait": P.integer(minimum=0),
    "storage": P.storage(), "tmpdir": P.string(), "vmid": P.string(format="pve-vmid-list"), "zstd": P.integer(),
}
VZDUMP_DEFAULTS = {
    "all": 0, "bwlimit": 0, "compress": "0", "ionice": 7, "lockwait": 180, "mailnotification": "always",
    "mode": "snapshot", "notification-mode": "auto", "pigz": 0, "prune-backups": "keep-all=1", "quiet": 0,
    "remove": 1, "stdexcludes": 1, "stop": 0, "stopwait": 10, "zstd": 1,
}
JOB_ONLY = {"comment": P.string(max_length=512), "dow": P.string(), "enabled": P.boolean(),
            "repeat-missed": P.boolean(), "schedule": P.string(format="pve-calendar-event", max_length=128),
            "starttime": P.string(pattern=r"\d{1,2}:\d{1,2}"), "node": P.string(format="pve-node")}
JOB_ID = P.string(optional=False, pattern=r"\S+", max_length=50)
COMPRESS_EXT = {"0": "", "1": ".lzo", "gzip": ".gz", "lzo": ".lzo", "zstd": ".zst"}
COMPRESS_RATIO = {"0": 0.62, "1": 0.45, "gzip": 0.36, "lzo": 0.45, "zstd": 0.33}
ROOT_ONLY = ("tmpdir", "dumpdir", "script", "job-id")
DOW = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]


def _bad(field: str, message: str):
    raise ApiError(400, "Parameter verification failed.", {field: message})


def _vmid_list(text: str | None) -> list[int]:
    return [int(v) for v in re.split(r"[,;\s]+", text or "") if v]


def install(cluster: Cluster, scenario: dict) -> None:
    """Backup archives keep the guest config they were made from; scenario backups get one too."""
    with cluster.lock:
        cluster.backup_archives = {}  # volume key -> {"type": qemu|lxc, "config": dict}
        cluster.vzdump_locks = {name: threading.Lock() for name in cluster.nodes}
        for key, vol in cluster.volumes.items():
            sub = storage_api.backup_subtype(vol) if vol.content == "backup" else None
            if sub and vol.vmid in cluster.guests and cluster.guests[vol.vmid].type == sub:
                cluster.backup_archives[key] = {"type": sub, "config": _clean_config(cluster.guests[vol.vmid].config)}
        for job in scenario.get("backup_jobs", []):
            job = dict(job)
            cluster.backup_jobs[job.pop("id")] = {"type": "vzdump", "enabled": 1, **job}
        scheduler = BackupScheduler(cluster)
        cluster.background.append(scheduler)
        scheduler.start()


def _clean_config(config: dict) -> dict:
    return {k: v for k, v in copy.deepcopy(config).items() if k != "lock"}


# ---- locks -------------------------------------------------------------------------------------

def set_lock(guest: Guest, lock: str) -> None:
    """Caller holds cluster.lock. PVE's set_lock: refuses a locked guest (`VM is locked (<lock>)`)."""
    check_lock(guest)
    guest.config["lock"] = lock


# ---- guest volumes -----------------------------------------------------------------------------

def backup_disks(guest: Guest) -> list[tuple[str, str, int, bool, str]]:
    """(key, volid, size, included, reason) for each volume a backup considers."""
    out = []
    for key, value in guest.config.items():
        if not (is_disk_key(key) or re.fullmatch(r"mp\d+", key)) or key.startswith("unused"):
            continue
        text = str(value)
        if "media=cdrom" in text:
            continue
        props = parse_props(text, default_key="volume" if guest.type == "lxc" else "file")
        volid = props.get("file") or props.get("volume") or ""
        size = parse_size(props["size"]) if props.get("size") else (528 * 1024 if key.startswith("efidisk") else 4 * MiB)
        if guest.type == "lxc":
            if key == "rootfs":
                out.append((key, volid, size, True, "rootfs"))
            elif props.get("backup") in ("1", "yes", "on", "true"):
                out.append((key, volid, size, True, "mountpoint with backup=1"))
            else:
                out.append((key, volid, size, False, "mountpoint without backup=1"))
        elif props.get("backup") in ("0", "no", "off", "false"):
            out.append((key, volid, size, False, "backup=no"))
        else:
            out.append((key, volid, size, True, "default include"))
    return out


def _human(size: float) -> str:
    units = ["B", "KiB", "MiB", "GiB", "TiB"]
    value, i = float(size), 0
    while value >= 1024 and i < len(units) - 1:
        value /= 1024
        i += 1
    return f"{value:.1f} {units[i]}" if i else f"{int(value)} B"


def _sim_elapsed(cluster: Cluster, start: float) -> int:
    """Simulated seconds since `start` (real time scaled by --time-scale)."""
    return int((time.time() - start) * cluster.clock.scale)


def _hms(seconds: float) -> str:
    s = int(seconds)
    return f"{s // 3600:02d}:{s % 3600 // 60:02d}:{s % 60:02d}"


def _duration(seconds: float) -> str:
    s = int(seconds)
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m {s % 60}s"
    return f"{s // 3600}h {s % 3600 // 60}m {s % 60}s"


# ---- selection ---------------------------------------------------------------------------------

def verify_vzdump_parameters(p: dict, check_missing: bool = True) -> None:
    for key in ("all", "exclude", "pool"):
        if p.get(key) and p.get("vmid"):
            _bad(key, "option conflicts with option 'vmid'")
    if p.get("prune-backups") is not None and p.get("maxfiles") is not None:
        _bad("prune-backups", "option conflicts with option 'maxfiles'")
    if check_missing and not (p.get("all") or p.get("stop") or p.get("pool")) and not p.get("vmid"):
        _bad("vmid", "property is missing")


def included_guests(cluster: Cluster, job: dict) -> dict[str, list[int]]:
    """PVE's get_included_guests: vmids per node ('' = configured but no such guest)."""
    out: dict[str, list[int]] = {}
    if job.get("vmid"):
        ids = _vmid_list(job["vmid"])
    elif job.get("pool"):
        ids = sorted(cluster.pools.get(job["pool"], {}).get("vms", set()))
    elif job.get("all"):
        excluded = set(_vmid_list(job.get("exclude")))
        ids = sorted(v for v in cluster.guests if v not in excluded)
    else:
        ids = []
    for vmid in ids:
        guest = cluster.guests.get(vmid)
        node = guest.node if guest else ""
        if job.get("node") and node and node != job["node"]:
            continue
        out.setdefault(node, []).append(vmid)
    return out


def command_line(vmids: list[int], p: dict) -> str:
    cmd = "vzdump"
    if p.get("vmid"):
        cmd += " " + " ".join(str(v) for v in vmids)
    for key, value in p.items():
        if key in ("vmid", "id", "starttime", "dow", "stdout", "enabled", "node", "schedule", "comment",
                   "repeat-missed", "type"):
            continue
        if isinstance(value, list):
            value = ",".join(value)
        text = str(value)
        cmd += f" --{key} " + (f"'{text}'" if re.search(r"[^\w.,:/=@+-]", text) or not text else text)
    return cmd


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
    from ..scenario import format_size
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


# ---- calendar events ---------------------------------------------------------------------------

_KEYWORDS = {"minutely": "*-*-* *:*:00", "hourly": "*-*-* *:00:00", "daily": "*-*-* 00:00:00",
             "weekly": "mon *-*-* 00:00:00", "monthly": "*-*-01 00:00:00", "yearly": "*-01-01 00:00:00",
             "annually": "*-01-01 00:00:00", "quarterly": "*-01,04,07,10-01 00:00:00",
             "semiannually": "*-01,07-01 00:00:00"}


class CalendarEvent:
    """systemd-style calendar events as PVE accepts them (`mon..fri 02:30`, `*/15`, `sat 03:00`)."""

    def __init__(self, text: str):
        self.text = text
        spec = _KEYWORDS.get(text.strip(), text.strip())
        parts = spec.split()
        if not parts:
            raise ValueError
        self.days = set(range(7))
        if parts and re.fullmatch(r"[a-z.,]+", parts[0]) and not re.fullmatch(r"\d", parts[0]):
            self.days = self._weekdays(parts.pop(0))
        self.years = self.months = self.mdays = None
        if parts and "-" in parts[0] and ":" not in parts[0]:
            date = parts.pop(0).split("-")
            if len(date) == 2:
                date = ["*"] + date
            if len(date) != 3:
                raise ValueError
            self.years = self._field(date[0], 1970, 9999)
            self.months = self._field(date[1], 1, 12)
            self.mdays = self._field(date[2], 1, 31)
        hours, minutes, seconds = set(range(24)), {0}, {0}
        if parts:
            tparts = parts.pop(0).split(":")
            if len(tparts) == 1:  # `*/15` or `5`: minutes of every hour
                minutes = self._field(tparts[0], 0, 59)
            elif len(tparts) in (2, 3):
                hours = self._field(tparts[0], 0, 23)
                minutes = self._field(tparts[1], 0, 59)
                if len(tparts) == 3:
                    seconds = self._field(tparts[2], 0, 59)
            else:
                raise ValueError
        if parts:
            raise ValueError
        self.hours, self.minutes, self.seconds = sorted(hours), sorted(minutes), sorted(seconds)

    @staticmethod
    def _weekdays(text: str) -> set[int]:
        out = set()
        for item in text.split(","):
            if ".." in item:
                a, b = item.split("..")
                ia, ib = DOW.index(a[:3]), DOW.index(b[:3])
                out.update(range(ia, ib + 1) if ia <= ib else list(range(ia, 7)) + list(range(0, ib + 1)))
            else:
                out.add(DOW.index(item[:3]))
        return out

    @staticmethod
    def _field(text: str, lo: int, hi: int) -> set[int]:
        out: set[int] = set()
        for item in text.split(","):
            step = 1
            if "/" in item:
                item, step_text = item.split("/")
                step = int(step_text)
                if step < 1:
                    raise ValueError
                start = lo if item in ("*", "") else int(item)
                end = hi
            elif item == "*":
                start, end = lo, hi
            elif ".." in item:
                a, b = item.split("..")
                start, end = int(a), int(b)
            else:
                start = end = int(item)
            if start < lo or end > hi or start > end:
                raise ValueError
            out.update(range(start, end + 1, step))
        return out

    def next_after(self, after: float) -> int | None:
        """First matching time strictly after `after` (local time), or None within ~5 years."""
        t = datetime.fromtimestamp(int(after)) + timedelta(seconds=1)
        day = t.replace(hour=0, minute=0, second=0)
        for _ in range(366 * 5):
            if day.weekday() in self.days and (self.years is None or day.year in self.years) \
                    and (self.months is None or day.month in self.months) and (self.mdays is None or day.day in self.mdays):
                for h in self.hours:
                    for m in self.minutes:
                        for s in self.seconds:
                            cand = day.replace(hour=h, minute=m, second=s)
                            if cand >= t:
                                return int(cand.timestamp())
            day += timedelta(days=1)
        return None


def parse_calendar(text: str, field: str = "schedule") -> CalendarEvent:
    try:
        return CalendarEvent(text)
    except (ValueError, IndexError):
        _bad(field, f"invalid format - unable to parse calendar event '{text}'")
        raise  # unreachable


@api.get("/cluster/jobs/schedule-analyze", params={
    "schedule": P.string(optional=False, format="pve-calendar-event", max_length=128),
    "iterations": P.integer(minimum=1, maximum=100), "starttime": P.integer()})
def schedule_analyze(ctx, p):
    event = parse_calendar(p["schedule"])
    now = p.get("starttime", int(time.time()))
    out = []
    for _ in range(p.get("iterations", 10)):
        nxt = event.next_after(now)
        if nxt is None:
            break
        g = datetime.fromtimestamp(nxt, tz=timezone.utc)
        out.append({"timestamp": nxt, "utc": f"{g.strftime('%a %b')} {g.day:2d} {g.strftime('%H:%M:%S %Y')}"})
        now = nxt
    return out


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


# ---- scheduler ---------------------------------------------------------------------------------

class BackupScheduler:
    """pvescheduler for backup jobs: starts a vzdump task per node when a job's time has come."""

    def __init__(self, cluster: Cluster, interval: float = 1.0):
        self.cluster = cluster
        self.interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="pvesim-backup-scheduler", daemon=True)
        self._started = time.time()

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.run_due(time.time())
            except Exception:  # the scheduler must survive a bad job definition
                pass

    def run_due(self, now: float) -> list[str]:
        cluster = self.cluster
        upids = []
        with cluster.lock:
            for job_id, job in cluster.backup_jobs.items():
                if not int(job.get("enabled", 1)):
                    continue
                last = job.get("_last", self._started)
                try:
                    nxt = CalendarEvent(job["schedule"]).next_after(last)
                except (ValueError, IndexError, KeyError):
                    continue
                if nxt is None or nxt > now:
                    continue
                job["_last"] = now
                for node, vmids in included_guests(cluster, job).items():
                    if not node or not cluster.nodes[node].online or not cluster.quorate(node):
                        continue
                    opts = {k: v for k, v in job.items() if k in VZDUMP_OPTS and k not in ("vmid",)}
                    if job.get("vmid"):
                        opts["vmid"] = ",".join(str(v) for v in vmids)
                    opts["job-id"] = job_id
                    upids.append(start_backup_task(cluster, node, sorted(vmids), opts, "root@pam",
                                                   str(vmids[0]) if len(vmids) == 1 else ""))
        return upids
