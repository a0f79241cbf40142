"""Migration: /nodes/{node}/{qemu,lxc}/{vmid}/migrate (precheck + qmigrate/vzmigrate task) and
/nodes/{node}/migrateall (pve-semantics §3.5, qemu-server QemuMigrate.pm, pve-container Migrate.pm).

The task log follows PVE's migration log (timestamped lines, `migration active, transferred X of
Y VM-state, S/s` for live migration) so clients can show progress. The guest changes node (and
its local volumes move with it) only when the migration succeeds; a target that goes away
mid-way ends the task with an error and leaves the guest on the source.
"""

from __future__ import annotations

import re
import threading
import time

from ..errors import ApiError, TaskError
from ..params import P, parse_props
from ..router import api
from ..scenario import format_size, is_disk_key, parse_size
from ..state import MiB, Cluster, Guest, Volume
from .guests import check_lock, human as _human

MIGRATE_SPEED = 300 * MiB  # live-migration bandwidth (bytes per simulated second)
DISK_COPY_SPEED = 250 * MiB


def _bad(field: str, message: str):
    raise ApiError(400, "Parameter verification failed.", {field: message})


# ---- what a guest uses -------------------------------------------------------------------------

def guest_volumes(guest: Guest) -> list[dict]:
    """Volumes referenced by the config: {key, volid, size, cdrom, unused}."""
    out = []
    for key, value in guest.config.items():
        if not (is_disk_key(key) or re.fullmatch(r"mp\d+", key)):
            continue
        text = str(value)
        props = parse_props(text, default_key="volume" if guest.type == "lxc" else "file")
        volid = props.get("file") or props.get("volume") or ""
        if not volid or volid in ("none", "cdrom") or ":" not in volid or volid.startswith("/"):
            continue
        out.append({"key": key, "volid": volid, "size": parse_size(props["size"]) if props.get("size") else 4 * MiB,
                    "cdrom": "media=cdrom" in text, "unused": key.startswith("unused")})
    return out


def _mapping_nodes(cluster: Cluster, mapping_id: str) -> set[str]:
    entry = cluster.pci_mappings.get(mapping_id)
    if not entry:
        return set()
    return {parse_props(m).get("node") for m in entry.get("map", [])}


def local_resources(cluster: Cluster, guest: Guest, running: bool) -> tuple[list[str], dict, dict[str, list[str]]]:
    """qemu-server check_local_resources: (blockers, mapped resources, missing mappings per node)."""
    conf = guest.config
    blockers: list[str] = []
    mapped: dict[str, dict] = {}
    missing: dict[str, list[str]] = {n: [] for n in cluster.nodes}
    for old in ("hostusb", "hostpci"):
        if conf.get(old):
            blockers.append(old)
    if conf.get("ivshmem"):
        blockers.append("ivshmem")
    for key in sorted(conf):
        value = str(conf[key])
        if re.fullmatch(r"(usb|hostpci)\d+", key):
            props = parse_props(value, default_key="host")
            if key.startswith("usb") and props.get("host", "").lower() == "spice":
                continue
            name = props.get("mapping")
            if name:
                have = _mapping_nodes(cluster, name)
                for node in cluster.nodes:
                    if node not in have:
                        missing[node].append(key)
                info = {"name": name}
                mapped[key] = info
                if key.startswith("hostpci") and int((cluster.pci_mappings.get(name) or {}).get("live-migration-capable", 0)):
                    info["live-migration"] = 1
                    continue
                if not running:
                    continue
        if key.startswith("serial") and value == "socket":
            continue
        if re.fullmatch(r"(usb|hostpci|serial|parallel|virtiofs)\d+", key):
            blockers.append(key)
    return blockers, mapped, missing


def unavailable_storages(cluster: Cluster, guest: Guest) -> dict[str, list[str]]:
    """Per node: storages of the guest's volumes that are disabled or not configured there."""
    out: dict[str, set[str]] = {}
    for vol in guest_volumes(guest):
        sid = vol["volid"].split(":", 1)[0]
        st = cluster.storages.get(sid)
        if st is None:
            continue
        for node in cluster.nodes:
            if not st.enabled or (st.nodes is not None and node not in st.nodes):
                out.setdefault(node, set()).add(sid)
    return {n: sorted(s) for n, s in out.items()}


def local_disks(cluster: Cluster, guest: Guest) -> list[dict]:
    out = []
    for vol in guest_volumes(guest):
        st = cluster.storages.get(vol["volid"].split(":", 1)[0])
        if st is not None and st.shared:
            continue
        item = {"volid": vol["volid"], "size": vol["size"]}
        if vol["cdrom"]:
            item["cdrom"] = 1
        elif vol["unused"]:
            item["is_unused"] = 1
        else:
            item["is_attached"] = 1
            item["drivename"] = vol["key"]
        out.append(item)
    return out


def _ha_sid(cluster: Cluster, guest: Guest) -> str | None:
    ha = cluster.ha
    if ha is None:
        return None
    sid = f"{'vm' if guest.type == 'qemu' else 'ct'}:{guest.vmid}"
    try:
        return sid if ha.is_managed(sid) else None
    except Exception:  # an HA engine without this resource
        return None


# ---- precheck ----------------------------------------------------------------------------------

def _split_targets(cluster, node: str, storages: dict, missing: dict) -> tuple[list, dict]:
    """Every other node, allowed or refused with its reasons (unavailable storages, mapped devices)."""
    allowed, refused = [], {}
    for other in cluster.nodes:
        if other == node:
            continue
        reasons: dict = {}
        if other in storages:
            reasons["unavailable_storages"] = storages[other]
        if missing.get(other):
            reasons["unavailable-resources"] = missing[other]
        if reasons:
            refused[other] = reasons
        else:
            allowed.append(other)
    return allowed, refused


@api.get("/nodes/{node}/qemu/{vmid}/migrate", params={"node": P.node(), "vmid": P.vmid(),
                                                      "target": P.string(format="pve-node")}, proxyto="node")
def qemu_precondition(ctx, p):
    ctx.check(f"/vms/{p['vmid']}", "VM.Migrate")
    cluster, node = ctx.cluster, p["node"]
    cluster.require_quorum(node)
    with cluster.lock:
        guest = cluster.guest(p["vmid"], "qemu", node)
        check_lock(guest)
        running = guest.status == "running"
        blockers, mapped, missing = local_resources(cluster, guest, running)
        storages = unavailable_storages(cluster, guest)
        allowed, refused = _split_targets(cluster, node, storages, missing)
        res = {"running": 1 if running else 0, "allowed_nodes": allowed, "not_allowed_nodes": refused}
        if _ha_sid(cluster, guest):
            res["dependent-ha-resources"] = []
        res["local_disks"] = local_disks(cluster, guest)
        res["local_resources"] = blockers
        res["mapped-resources"] = sorted(mapped)
        res["mapped-resource-info"] = mapped
        res["has-dbus-vmstate"] = 1
        return res


@api.get("/nodes/{node}/lxc/{vmid}/migrate", params={"node": P.node(), "vmid": P.vmid(),
                                                     "target": P.string(format="pve-node")}, proxyto="node")
def lxc_precondition(ctx, p):
    ctx.check(f"/vms/{p['vmid']}", "VM.Migrate")
    cluster, node = ctx.cluster, p["node"]
    cluster.require_quorum(node)
    with cluster.lock:
        guest = cluster.guest(p["vmid"], "lxc", node)
        check_lock(guest)
        storages = unavailable_storages(cluster, guest)
        allowed, refused = _split_targets(cluster, node, storages, {})
        # pve-container spells these keys with dashes, qemu-server with underscores.
        res = {"running": 1 if guest.status == "running" else 0, "allowed-nodes": allowed, "not-allowed-nodes": refused}
        if _ha_sid(cluster, guest):
            res["dependent-ha-resources"] = []
        return res


# ---- common checks -----------------------------------------------------------------------------

def _sync_checks(ctx, p: dict, type_: str) -> tuple[Guest, str]:
    cluster, node, target = ctx.cluster, p["node"], p["target"]
    if target == node:
        _bad("target", "target is local node.")
    cluster.require_quorum(node)
    if target not in cluster.nodes:
        raise ApiError(500, f"no such cluster node '{target}'")
    guest = cluster.guest(p["vmid"], type_, node)
    check_lock(guest)
    return guest, cluster.nodes[target].ip


def _check_storage_availability(cluster: Cluster, guest: Guest, target: str, storagemap: dict[str, str]) -> None:
    """qemu-server check_storage_availability: each volume's storage usable on both nodes."""
    for vol in guest_volumes(guest):
        sid = vol["volid"].split(":", 1)[0]
        cluster.storage(sid)  # does not exist / disabled
        st = cluster.storages[sid]
        target_sid = storagemap.get(sid, storagemap.get("", sid)) if not st.shared else sid
        cluster.storage(target_sid, target)


def _parse_storagemap(text: str | None, field: str) -> dict[str, str]:
    """`storage-pair-list`: `target` (all to one), `src:dst,...`, or `1` (identity)."""
    if not text or text == "1":
        return {}
    out: dict[str, str] = {}
    for item in re.split(r"[,;\s]+", text):
        if not item:
            continue
        if ":" in item:
            src, dst = item.split(":", 1)
            out[src] = dst
        elif "" in out:
            _bad(field, "failed to parse storage map: default target already set")
        else:
            out[""] = item
    return out


_task_clock = threading.local()  # each task runs in its own thread: its start and the time scale


def _stamp(line: str) -> str:
    """PVE's migration log prefix, in simulated time so that durations read as PVE's would."""
    now = time.time()
    base = getattr(_task_clock, "base", None)
    if base is not None:
        now = base + (now - base) * _task_clock.scale
    return f"{time.strftime('%Y-%m-%d %H:%M:%S', time.localtime(now))} {line}"


class _Abort(Exception):
    """A migration step failed: `message` is the reason, `problems` marks phase-2 failures."""

    def __init__(self, message: str, problems: bool = False):
        super().__init__(message)
        self.problems = problems


def _target_alive(cluster: Cluster, target: str, ip: str) -> None:
    node = cluster.nodes[target]
    if not node.online:
        raise _Abort(f"ssh: connect to host {ip} port 22: No route to host")


def _sleep(t, cluster: Cluster, target: str, ip: str, seconds: float) -> None:
    """Simulated wait that notices the target going away and injected failures."""
    try:
        t.sleep(seconds)
    except TaskError as exc:
        raise _Abort(str(exc)) from None
    _target_alive(cluster, target, ip)


def _move_guest(cluster: Cluster, guest: Guest, target: str, running_after: bool) -> None:
    """Hand the guest (and its local volumes) to `target`; caller holds cluster.lock."""
    source = guest.node
    for vol in list(cluster.volumes.values()):
        if vol.vmid == guest.vmid and vol.node == source and vol.content in ("images", "rootdir"):
            cluster.remove_volume(vol.volid, source)
            vol.node = target
            cluster.add_volume(vol)
    guest.node = target
    if running_after:
        started = guest.started_at
        cluster.guest_started(guest)
        guest.started_at = started or guest.started_at


def _copy_local_volumes(t, cluster: Cluster, guest: Guest, target: str, ip: str, storagemap: dict[str, str],
                        vols: list[dict]) -> None:
    for vol in vols:
        sid, name = vol["volid"].split(":", 1)
        st = cluster.storages[sid]
        target_sid = storagemap.get(sid, storagemap.get("", sid))
        with cluster.lock:
            dst = cluster.storages.get(target_sid)
            if dst is None or not dst.on_node(target):
                raise _Abort(f"storage '{target_sid}' is not available on node '{target}'")
            free = dst.total - cluster.storage_used(target_sid, None if dst.shared else target)
            if vol["size"] > free:
                raise _Abort(f"storage migration for '{vol['volid']}' to storage '{target_sid}' failed - "
                             f"out of space on target")
        if st.type == "zfspool":
            pool = st.extra.get("pool", "rpool/data")
            t.log(_stamp(f"full send of {pool}/{name}@__migration__ estimated size is {format_size(vol['size'])}"))
            t.log(_stamp(f"total estimated size is {format_size(vol['size'])}"))
            t.log(_stamp("TIME        SENT   SNAPSHOT"))
        steps = 5
        for i in range(1, steps + 1):
            _sleep(t, cluster, target, ip, vol["size"] / DISK_COPY_SPEED / steps)
            done = vol["size"] * i // steps
            if st.type == "zfspool":
                t.log(_stamp(f"{time.strftime('%H:%M:%S')}   {format_size(done):>6}   {pool}/{name}@__migration__"))
            else:
                t.log(_stamp(f"transferred {_human(done)} of {_human(vol['size'])} ({done * 100 / vol['size']:.2f}%)"))
        new_volid = f"{target_sid}:{name}"
        if st.type == "zfspool":
            t.log(_stamp(f"successfully imported '{new_volid}'"))
        t.log(_stamp(f"volume '{vol['volid']}' is '{new_volid}' on the target"))
        if new_volid != vol["volid"]:
            with cluster.lock:
                old = cluster.find_volume(vol["volid"], guest.node)
                if old is not None:
                    cluster.remove_volume(vol["volid"], guest.node)
                    cluster.add_volume(Volume(volid=new_volid, storage=target_sid, content=old.content, size=old.size,
                                              format=old.format, vmid=old.vmid, node=guest.node))
                guest.config[vol["key"]] = str(guest.config[vol["key"]]).replace(vol["volid"], new_volid, 1)


def _duration(start: float, cluster: Cluster) -> str:
    s = int((time.time() - start) * cluster.clock.scale)
    return f"{s // 3600:02d}:{s % 3600 // 60:02d}:{s % 60:02d}"


# ---- qemu --------------------------------------------------------------------------------------

@api.post("/nodes/{node}/qemu/{vmid}/migrate", params={
    "node": P.node(), "vmid": P.vmid(), "target": P.string(optional=False, format="pve-node"),
    "online": P.boolean(), "force": P.boolean(), "migration_type": P.enum(["secure", "insecure"]),
    "migration_network": P.string(format="CIDR"), "with-local-disks": P.boolean(),
    "targetstorage": P.string(), "bwlimit": P.integer(minimum=0), "with-conntrack-state": P.boolean(),
}, proxyto="node")
def qemu_migrate(ctx, p):
    ctx.check(f"/vms/{p['vmid']}", "VM.Migrate")
    cluster = ctx.cluster
    for key in ("force", "migration_type", "migration_network"):
        if p.get(key) and not ctx.is_root:
            _bad(key, "Only root may use this option.")
    with cluster.lock:
        guest, ip = _sync_checks(ctx, p, "qemu")
        running = guest.status == "running"
        if running and not p.get("online"):
            raise ApiError(500, "can't migrate running VM without --online")
        storagemap = _parse_storagemap(p.get("targetstorage"), "targetstorage")
        for sid in set(storagemap.values()):
            ctx.check(f"/storage/{sid}", "Datastore.AllocateSpace")
            st = cluster.storage(sid, p["target"])
            if "images" not in st.content:
                raise ApiError(500, f"storage '{sid}' does not support vm images")
        _check_storage_availability(cluster, guest, p["target"], storagemap)
        sid = _ha_sid(cluster, guest)
    if sid and not getattr(ctx, "from_ha", False):
        return _ha_migrate(ctx, guest, sid, p["target"])
    opts = {"online": bool(p.get("online")) and running, "force": bool(p.get("force")),
            "with-local-disks": bool(p.get("with-local-disks")), "storagemap": storagemap}
    return start_migration(cluster, guest, p["node"], p["target"], ctx.authid, opts)


def _ha_migrate(ctx, guest: Guest, sid: str, target: str) -> str:
    cluster = ctx.cluster
    word = "VM" if guest.type == "qemu" else "CT"

    def worker(t):
        t.log(f"Requesting HA migration for {word} {guest.vmid} to node {target}")
        t.sleep(0.5)
        try:
            cluster.ha.migrate(sid, target)
        except ApiError as exc:
            raise TaskError(exc.message) from None

    return cluster.tasks.start(node=guest.node, type="hamigrate", id=guest.vmid, user=ctx.authid, worker=worker)


def start_migration(cluster: Cluster, guest: Guest, source: str, target: str, user: str, opts: dict) -> str:
    """Start a `qmigrate`/`vzmigrate` task; its worker implements PVE's prepare/phase1..3."""
    ip = cluster.nodes[target].ip
    task_type = "qmigrate" if guest.type == "qemu" else "vzmigrate"
    worker = _qemu_worker if guest.type == "qemu" else _lxc_worker

    def run(t):
        _task_clock.base, _task_clock.scale = time.time(), cluster.clock.scale
        worker(t, cluster, guest, source, target, ip, opts)

    return cluster.tasks.start(node=source, type=task_type, id=guest.vmid, user=user, worker=run)


def _prepare_qemu(t, cluster: Cluster, guest: Guest, target: str, ip: str, opts: dict) -> bool:
    with cluster.lock:
        if cluster.guests.get(guest.vmid) is not guest:
            raise _Abort(f"Configuration file 'nodes/{guest.node}/qemu-server/{guest.vmid}.conf' does not exist")
        if guest.lock:
            raise _Abort(f"VM is locked ({guest.lock})")
        running = guest.status == "running"
        if running and not opts["online"]:
            raise _Abort("can't migrate running VM without --online")
        blockers, mapped, missing = local_resources(cluster, guest, running)
    if running:
        t.log(_stamp("conntrack state migration not supported or disabled, active connections might get dropped"))
    unmapped = [r for r in blockers if r not in mapped]
    if unmapped:
        if running or not opts["force"]:
            raise _Abort(f"can't migrate VM which uses local devices: {', '.join(unmapped)}")
        t.log(_stamp("migrating VM which uses local devices"))
    if mapped:
        live_missing = [f"{k}:{v['name']}" for k, v in sorted(mapped.items()) if not v.get("live-migration")]
        if missing.get(target):
            raise _Abort(f"can't migrate to '{target}': missing mapped devices {', '.join(missing[target])}")
        if running and live_missing:
            raise _Abort(f"can't live migrate running VM which uses following mapped devices: {', '.join(live_missing)}")
        t.log(_stamp("migrating VM which uses mapped local devices"))
    if not cluster.nodes[target].online:
        raise _Abort("Can't connect to destination address using public key")
    return running


def _qemu_worker(t, cluster: Cluster, guest: Guest, source: str, target: str, ip: str, opts: dict) -> None:
    start = time.time()
    locked = False
    try:
        running = _prepare_qemu(t, cluster, guest, target, ip, opts)
        with cluster.lock:
            if guest.lock:
                raise _Abort(f"VM is locked ({guest.lock})")
            guest.config["lock"] = "migrate"
            locked = True
        # phase 1: local disks (offline copy) and, for offline VMs, the config move
        t.log(_stamp(f"starting migration of VM {guest.vmid} to node '{target}' ({ip})"))
        _sleep(t, cluster, target, ip, 1)
        with cluster.lock:
            local = [v for v in guest_volumes(guest) if not cluster.storages[v["volid"].split(":", 1)[0]].shared]
        for vol in local:
            ref = "unused" if vol["unused"] else "attached"
            if vol["cdrom"]:
                raise _Abort(f"can't migrate local disk '{vol['volid']}': local cdrom image")
            t.log(_stamp(f"found local disk '{vol['volid']}' ({ref})"))
        if running and local and not opts["with-local-disks"]:
            for vol in local:
                t.log(_stamp(f"can't migrate local disk '{vol['volid']}': can't live migrate attached local disks "
                             f"without with-local-disks option"))
            raise _Abort("can't migrate VM - check log")
        if local and not running:
            t.log(_stamp("copying local disk images"))
            _copy_local_volumes(t, cluster, guest, target, ip, opts["storagemap"], local)
        if not running:
            with cluster.lock:
                _target_alive(cluster, target, ip)
                _move_guest(cluster, guest, target, running_after=False)
            t.log(_stamp(f"migration finished successfully (duration {_duration(start, cluster)})"))
            return
        # phase 2: live migration
        t.log(_stamp(f"starting VM {guest.vmid} on remote node '{target}'"))
        _sleep(t, cluster, target, ip, 1.5)
        if local:
            for vol in local:
                t.log(_stamp(f"volume '{vol['volid']}' is '{vol['volid']}' on the target"))
        t.log(_stamp("start remote tunnel"))
        t.log(_stamp("ssh tunnel ver 1"))
        t.log(_stamp(f"starting online/live migration on unix:/run/qemu-server/{guest.vmid}.migrate"))
        t.log(_stamp("set migration capabilities"))
        t.log(_stamp("migration downtime limit: 100 ms"))
        t.log(_stamp("migration cachesize: 1.0 GiB"))
        t.log(_stamp("set migration parameters"))
        t.log(_stamp(f"start migrate command to unix:/run/qemu-server/{guest.vmid}.migrate"))
        try:
            if local:
                total_disk = sum(v["size"] for v in local)
                t.log(_stamp(f"{local[0]['key']}: start migration to nbd:unix:/run/qemu-server/{guest.vmid}_nbd.migrate"))
                for i in range(1, 6):
                    _sleep(t, cluster, target, ip, total_disk / DISK_COPY_SPEED / 5)
                    done = total_disk * i // 5
                    t.log(_stamp(f"drive-{local[0]['key']}: transferred {_human(done)} of {_human(total_disk)} "
                                 f"({done * 100 / total_disk:.2f}%) in {int((time.time() - start) * cluster.clock.scale)}s"))
                t.log(_stamp("all 'mirror' jobs are ready"))
            mem = guest.maxmem()
            state = int(mem * 0.97)  # RAM minus the last dirty pages sent during the downtime
            speed = MIGRATE_SPEED
            seconds = max(state / speed, 3.0)
            steps = max(4, min(20, int(seconds)))
            for i in range(1, steps + 1):
                _sleep(t, cluster, target, ip, seconds / steps)
                done = state * i // steps
                t.log(_stamp(f"migration active, transferred {_human(done)} of {_human(mem)} VM-state, {_human(speed)}/s"))
            t.log(_stamp(f"average migration speed: {_human(speed)}/s - downtime 52 ms"))
            t.log(_stamp("migration completed, transferred "
                         f"{_human(state)} VM-state"))
            t.log(_stamp("migration status: completed"))
        except _Abort as exc:
            t.log(_stamp(f"ERROR: online migrate failure - {exc}"))
            t.log(_stamp("aborting phase 2 - cleanup resources"))
            t.log(_stamp("migrate_cancel"))
            raise _Abort(str(exc), problems=True) from None
        # phase 3: move the config, resume on the target
        with cluster.lock:
            _target_alive(cluster, target, ip)
            cluster.guest_stopped(guest)
            started = guest.started_at
            try:
                _move_guest(cluster, guest, target, running_after=True)
            except TaskError as exc:  # a start hook refused the guest on the target (e.g. a PCI device in use)
                _move_guest(cluster, guest, source, running_after=False)
                cluster.guest_started(guest)
                raise _Abort(str(exc), problems=True) from None
            guest.started_at = started or guest.started_at
        if local:
            t.log(_stamp("stopping NBD storage migration server on target."))
        t.log(_stamp(f"migration finished successfully (duration {_duration(start, cluster)})"))
    except _Abort as exc:
        if exc.problems:
            t.log(_stamp(f"ERROR: migration finished with problems (duration {_duration(start, cluster)})"))
            raise TaskError("migration problems") from None
        t.log(_stamp(f"ERROR: migration aborted (duration {_duration(start, cluster)}): {exc}"))
        raise TaskError("migration aborted") from None
    finally:
        if locked:
            with cluster.lock:
                if guest.config.get("lock") == "migrate":
                    guest.config.pop("lock", None)


# ---- lxc ---------------------------------------------------------------------------------------

@api.post("/nodes/{node}/lxc/{vmid}/migrate", params={
    "node": P.node(), "vmid": P.vmid(), "target": P.string(optional=False, format="pve-node"),
    "online": P.boolean(), "restart": P.boolean(), "timeout": P.integer(), "target-storage": P.string(),
    "bwlimit": P.number(minimum=0),
}, proxyto="node")
def lxc_migrate(ctx, p):
    ctx.check(f"/vms/{p['vmid']}", "VM.Migrate")
    cluster = ctx.cluster
    with cluster.lock:
        guest, ip = _sync_checks(ctx, p, "lxc")
        running = guest.status == "running"
        if running and not p.get("online") and not p.get("restart"):
            raise ApiError(500, "can't migrate running container without --online or --restart")
        storagemap = _parse_storagemap(p.get("target-storage"), "target-storage")
        for sid in set(storagemap.values()):
            ctx.check(f"/storage/{sid}", "Datastore.AllocateSpace")
            cluster.storage(sid, p["target"])
        sid = _ha_sid(cluster, guest)
    if sid and not getattr(ctx, "from_ha", False):
        return _ha_migrate(ctx, guest, sid, p["target"])
    opts = {"online": bool(p.get("online")), "restart": bool(p.get("restart")), "timeout": p.get("timeout", 180),
            "storagemap": storagemap, "force": False, "with-local-disks": True}
    return start_migration(cluster, guest, p["node"], p["target"], ctx.authid, opts)


def _lxc_worker(t, cluster: Cluster, guest: Guest, source: str, target: str, ip: str, opts: dict) -> None:
    start = time.time()
    locked = was_running = False
    try:
        with cluster.lock:
            if guest.lock:
                raise _Abort(f"CT is locked ({guest.lock})")
            running = guest.status == "running"
            if running:
                if opts["online"]:
                    raise _Abort("lxc live migration is currently not implemented")
                if not opts["restart"]:
                    raise _Abort("running container can only be migrated in restart mode")
            storages = unavailable_storages(cluster, guest)
            if target in storages:
                raise _Abort(f"storage '{storages[target][0]}' is not available on node '{target}'")
        if not cluster.nodes[target].online:
            raise _Abort("Can't connect to destination address using public key")
        with cluster.lock:
            guest.config["lock"] = "migrate"
            locked = True
        if running:
            t.log(_stamp(f"shutdown CT {guest.vmid}"))
            _sleep(t, cluster, target, ip, 4)
            with cluster.lock:
                cluster.guest_stopped(guest)
            was_running = True
        t.log(_stamp(f"starting migration of CT {guest.vmid} to node '{target}' ({ip})"))
        with cluster.lock:
            vols = guest_volumes(guest)
            local = [v for v in vols if not cluster.storages[v["volid"].split(":", 1)[0]].shared]
        for vol in vols:
            sid = vol["volid"].split(":", 1)[0]
            if cluster.storages[sid].shared:
                t.log(_stamp(f"volume '{vol['volid']}' is on shared storage '{sid}'"))
            else:
                t.log(_stamp(f"found local volume '{vol['volid']}' (in current VM config)"))
        _copy_local_volumes(t, cluster, guest, target, ip, opts["storagemap"], local)
        _sleep(t, cluster, target, ip, 1)
        with cluster.lock:
            _target_alive(cluster, target, ip)
            _move_guest(cluster, guest, target, running_after=False)
        t.log(_stamp("start final cleanup"))
        if was_running:
            t.log(_stamp("start container on target node"))
            with cluster.lock:
                try:
                    cluster.guest_started(guest)
                except TaskError as exc:
                    raise _Abort(str(exc), problems=True) from None
            was_running = False
        t.log(_stamp(f"migration finished successfully (duration {_duration(start, cluster)})"))
    except _Abort as exc:
        if exc.problems:
            t.log(_stamp(f"ERROR: {exc}"))
            t.log(_stamp(f"ERROR: migration finished with problems (duration {_duration(start, cluster)})"))
            raise TaskError("migration problems") from None
        t.log(_stamp(f"ERROR: migration aborted (duration {_duration(start, cluster)}): {exc}"))
        raise TaskError("migration aborted") from None
    finally:
        with cluster.lock:
            if was_running and guest.status != "running" and cluster.nodes[guest.node].online:
                try:
                    cluster.guest_started(guest)  # restart mode: the CT comes back where it is
                except Exception:
                    pass
            if locked and guest.config.get("lock") == "migrate":
                guest.config.pop("lock", None)


# ---- migrateall --------------------------------------------------------------------------------

@api.post("/nodes/{node}/migrateall", params={
    "node": P.node(), "target": P.string(optional=False, format="pve-node"), "vms": P.string(format="pve-vmid-list"),
    "with-local-disks": P.boolean(), "maxworkers": P.integer(minimum=1, maximum=64),
    "max-workers": P.integer(minimum=1, maximum=64)}, proxyto="node")
def migrate_all(ctx, p):
    cluster, node, target = ctx.cluster, p["node"], p["target"]
    if target == node:
        _bad("target", "target is local node.")
    cluster.require_quorum(node)
    if target not in cluster.nodes:
        raise ApiError(500, f"no such cluster node '{target}'")
    wanted = {int(v) for v in re.split(r"[,;\s]+", p.get("vms", "")) if v}
    with cluster.lock:
        guests = sorted((g for g in cluster.guests.values() if g.node == node and (not wanted or g.vmid in wanted)
                         and not g.is_template), key=lambda g: g.vmid)
        if wanted:
            for vmid in wanted:
                ctx.check(f"/vms/{vmid}", "VM.Migrate")
        else:
            ctx.check("/", "VM.Migrate")
    user = ctx.authid

    def worker(t):
        failed = 0
        for guest in guests:
            with cluster.lock:
                running = guest.status == "running"
                if guest.lock or guest.node != node:
                    continue
                opts = {"online": running and guest.type == "qemu", "restart": running and guest.type == "lxc",
                        "force": False, "with-local-disks": bool(p.get("with-local-disks")) or guest.type == "lxc",
                        "storagemap": {}, "timeout": 180}
                upid = start_migration(cluster, guest, node, target, user, opts)
            t.log(f"Starting migration of {guest.kind} {guest.vmid}")
            while True:
                task = cluster.tasks.get(upid)
                if task is None or task.status == "stopped":
                    break
                t.sleep(1)
            if task is not None and task.exitstatus != "OK":
                failed += 1
                t.log(f"migration of {guest.kind} {guest.vmid} failed: {task.exitstatus}")
        if failed:
            raise TaskError(f"{failed} migration(s) failed")

    return cluster.tasks.start(node=node, type="migrateall", id="", user=user, worker=worker)
