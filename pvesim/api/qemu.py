"""/nodes/{node}/qemu: QEMU VMs (pve-semantics §3). Shared machinery lives in guests.py.

Config changes to running VMs are applied at once (pvesim keeps no pending section, so
GET .../pending lists the current values only and `revert` is accepted and ignored).
"""

from __future__ import annotations

import time
import uuid

from ..errors import ApiError, TaskError
from ..params import P, PropString, parse_props
from ..router import api
from ..scenario import is_disk_key
from . import guests as G
from .guests import DURATION

b, i, s = P.boolean, P.integer, P.string

AGENT = PropString({"enabled": P.boolean(optional=False), "freeze-fs": P.boolean(), "fstrim_cloned_disks": P.boolean(),
                    "type": P.enum(["virtio", "isa"])}, default_key="enabled",
                   key_aliases={"freeze-fs-on-backup": ("freeze-fs", "freeze-fs"), "guest-fsfreeze": ("freeze-fs", "freeze-fs")})
MEMORY = PropString({"current": P.integer(optional=False, minimum=16)}, default_key="current")
MACHINE = PropString({"type": P.string(max_length=40), "viommu": P.enum(["intel", "virtio"]),
                      "aw-bits": P.number(minimum=32, maximum=64), "enable-s3": P.boolean(), "enable-s4": P.boolean()},
                     default_key="type")
UNUSED = PropString({"file": P.string(optional=False, format="pve-volume-id")}, default_key="file",
                    key_aliases={"volume": ("file", "file")})
LOCKS = ["backup", "clone", "create", "migrate", "rollback", "snapshot", "snapshot-delete", "suspending", "suspended"]
OSTYPES = ["other", "wxp", "w2k", "w2k3", "w2k8", "wvista", "win7", "win8", "win10", "win11", "l24", "l26", "solaris"]
KEYBOARDS = ["de", "de-ch", "da", "en-gb", "en-us", "es", "fi", "fr", "fr-be", "fr-ca", "fr-ch", "hu", "is", "it", "ja",
             "lt", "mk", "nl", "no", "pl", "pt", "pt-br", "sv", "sl", "tr"]

# Every VM config option (as in POST /nodes/{node}/qemu, PUT/POST .../config).
OPTIONS = {
    "acpi": b(), "affinity": s(format="pve-cpuset"), "agent": s(prop=AGENT), "allow-ksm": b(),
    "amd-sev": s(format="pve-qemu-sev-fmt"), "arch": P.enum(["x86_64", "aarch64"]), "args": s(), "audio0": s(),
    "autostart": b(), "balloon": i(minimum=0), "bios": P.enum(["seabios", "ovmf"]), "boot": s(format="pve-qm-boot"),
    "bootdisk": s(format="pve-qm-bootdisk", pattern=r"(ide|sata|scsi|virtio)\d+"), "cdrom": s(format="pve-qm-ide"),
    "cicustom": s(format="pve-qm-cicustom"), "cipassword": s(), "citype": P.enum(["configdrive2", "nocloud", "opennebula"]),
    "ciupgrade": b(), "ciuser": s(), "cores": i(minimum=1), "cpu": s(format="pve-vm-cpu-conf"),
    "cpulimit": P.number(minimum=0, maximum=128), "cpuunits": i(minimum=1, maximum=262144),
    "description": s(max_length=8192), "efidisk0": s(prop=G.drive_prop("efidisk")), "freeze": b(),
    "hookscript": s(format="pve-volume-id"), "hostpci[n]": s(format="pve-qm-hostpci", slots=16),
    "hotplug": s(format="pve-hotplug-features"), "hugepages": P.enum(["any", "2", "1024"]),
    "ide[n]": s(prop=G.drive_prop("ide"), slots=4), "intel-tdx": s(format="pve-qemu-tdx-fmt"),
    "ipconfig[n]": s(format="pve-qm-ipconfig", slots=32), "ivshmem": s(), "keephugepages": b(),
    "keyboard": P.enum(KEYBOARDS), "kvm": b(), "localtime": b(), "lock": P.enum(LOCKS), "machine": s(prop=MACHINE),
    "memory": s(prop=MEMORY), "migrate_downtime": P.number(minimum=0), "migrate_speed": i(minimum=0),
    "name": s(format="dns-name"), "nameserver": s(format="address-list"), "net[n]": s(prop=G.QEMU_NET, slots=32),
    "numa": b(), "numa[n]": s(slots=8), "onboot": b(), "ostype": P.enum(OSTYPES),
    "parallel[n]": s(pattern=r"/dev/parport\d+|/dev/usb/lp\d+", slots=3), "protection": b(), "reboot": b(),
    "rng0": s(format="pve-qm-rng"), "sata[n]": s(prop=G.drive_prop("sata"), slots=6),
    "scsi[n]": s(prop=G.drive_prop("scsi"), slots=31),
    "scsihw": P.enum(["lsi", "lsi53c810", "virtio-scsi-pci", "virtio-scsi-single", "megasas", "pvscsi"]),
    "searchdomain": s(), "serial[n]": s(pattern=r"(/dev/.+|socket)", slots=4), "shares": i(minimum=0, maximum=50000),
    "smbios1": s(format="pve-qm-smbios1", max_length=512), "smp": i(minimum=1), "sockets": i(minimum=1),
    "spice_enhancements": s(), "sshkeys": s(format="urlencoded"),
    "startdate": s(pattern=r"(now|\d{4}-\d{1,2}-\d{1,2}(T\d{1,2}:\d{1,2}:\d{1,2})?)"),
    "startup": s(format="pve-startup-order"), "tablet": b(), "tags": s(format="pve-tag-list"), "tdf": b(),
    "template": b(), "tpmstate0": s(prop=G.drive_prop("tpmstate")), "unused[n]": s(prop=UNUSED, slots=256),
    "usb[n]": s(slots=14), "vcpus": i(minimum=1), "vga": s(), "virtio[n]": s(prop=G.drive_prop("virtio"), slots=16),
    "virtiofs[n]": s(slots=10),
    "vmgenid": s(pattern=r"(?:[a-fA-F0-9]{8}(?:-[a-fA-F0-9]{4}){3}-[a-fA-F0-9]{12}|[01])"),
    "vmstatestorage": s(format="pve-storage-id"), "watchdog": s(format="pve-qm-watchdog"),
}
NODE_VMID = {"node": P.node(), "vmid": P.vmid()}
DIGEST = s(max_length=40)
CREATE_ONLY = {"archive", "force", "live-restore", "pool", "start", "storage", "unique", "bwlimit", "ha-managed",
               "import-working-storage", "node", "vmid"}


def _vm(ctx, p):
    return ctx.cluster.guest(p["vmid"], "qemu", p["node"])


# ---- list and create ------------------------------------------------------------------------

@api.get("/nodes/{node}/qemu", params={"node": P.node(), "full": b()}, proxyto="node")
def vm_list(ctx, p):
    cluster = ctx.cluster
    with cluster.lock:
        return [G.list_item(cluster, g, full=bool(p.get("full")))
                for g in sorted(cluster.guests.values(), key=lambda g: g.vmid)
                if g.type == "qemu" and g.node == p["node"] and ctx.has(f"/vms/{g.vmid}", "VM.Audit")]


@api.post("/nodes/{node}/qemu", params={
    **NODE_VMID, **OPTIONS, "archive": s(max_length=255), "bwlimit": i(minimum=0), "force": b(), "ha-managed": b(),
    "import-working-storage": s(format="pve-storage-id"), "live-restore": b(), "pool": s(format="pve-poolid"),
    "start": b(), "storage": s(format="pve-storage-id"), "unique": b(),
}, proxyto="node")
def vm_create(ctx, p):
    """qmcreate: sync checks, then a task that allocates the disks while the VM holds `lock: create`."""
    cluster = ctx.cluster
    vmid, node, pool = p["vmid"], p["node"], p.get("pool")
    for flag in ("force", "unique", "live-restore"):
        if flag in p and "archive" not in p:
            raise ApiError(400, "Parameter verification failed.", {flag: "missing property - 'archive' is required"})
    if "archive" in p:
        conflicts = {k: "option conflicts with option 'archive'" for k in p
                     if is_disk_key(k) and not k.startswith("unused") and k != "archive"}
        if conflicts:
            raise ApiError(400, "Parameter verification failed.", conflicts)
        from .backup import restore_guest  # backup.py loads after this module (api/__init__ order)
        return restore_guest(ctx, p, "qemu")
    G.check_vm_allocate(ctx, vmid, pool)
    G.check_pool(cluster, pool)
    if p.get("ha-managed"):
        ctx.check("/", "Sys.Console")
    config = G.cdrom_alias({k: v for k, v in p.items() if k not in CREATE_ONLY})
    G.check_config_perms(ctx, vmid, config)
    disks = {k: str(v) for k, v in config.items() if is_disk_key(k)}
    G.check_disk_storages(ctx, node, "qemu", disks)
    guest = G.register_new_guest(cluster, vmid=vmid, type_="qemu", node=node, config=config, disks=disks)

    def finish(conf):
        if "boot" not in conf:
            conf["boot"] = _default_boot(conf)
        conf.setdefault("smbios1", G.smbios_uuid())
        conf.setdefault("vmgenid", str(uuid.uuid4()))
        conf.setdefault("meta", G.meta_line())

    return G.create_task(ctx, guest, p, disks, lambda t: t.sleep(DURATION["create"]), finish)


def _default_boot(conf: dict) -> str:
    """PVE's default boot order: first disk, first cdrom, first NIC."""
    order = []
    disks = [k for k in sorted(conf, key=_disk_sort) if is_disk_key(k) and not k.startswith(("unused", "efidisk", "tpmstate"))]
    disk = next((k for k in disks if not G.is_cdrom(conf[k])), None)
    cdrom = next((k for k in disks if G.is_cdrom(conf[k]) and "cloudinit" not in str(conf[k])), None)
    net = next((k for k in sorted(conf) if k.startswith("net") and k[3:].isdigit()), None)
    order += [x for x in (disk, cdrom, net) if x]
    return "order=" + ";".join(order) if order else " "


def _disk_sort(key: str):
    for rank, bus in enumerate(("scsi", "virtio", "sata", "ide")):
        if key.startswith(bus) and key[len(bus):].isdigit():
            return (rank, int(key[len(bus):]))
    return (9, 0)


# ---- index routes ---------------------------------------------------------------------------

@api.get("/nodes/{node}/qemu/{vmid}", params=NODE_VMID, proxyto="node")
def vm_index(ctx, p):
    _vm(ctx, p)
    return [{"subdir": d} for d in ("config", "pending", "status", "unlink", "vncproxy", "termproxy", "migrate", "resize",
                                    "move", "rrd", "rrddata", "monitor", "agent", "snapshot", "spiceproxy", "sendkey",
                                    "firewall", "mtunnel", "remote_migrate")]


@api.get("/nodes/{node}/qemu/{vmid}/status", params=NODE_VMID, proxyto="node")
def vm_status_index(ctx, p):
    _vm(ctx, p)
    return [{"subdir": d} for d in ("current", "start", "stop", "reset", "shutdown", "suspend", "reboot", "resume")]


# ---- config -----------------------------------------------------------------------------------

@api.get("/nodes/{node}/qemu/{vmid}/config", params={
    **NODE_VMID, "current": b(), "snapshot": s(format="pve-configid", max_length=40)}, proxyto="node")
def vm_config(ctx, p):
    return G.with_guest(ctx, p, "qemu", lambda guest: G.config_payload(guest, p.get("snapshot")))


@api.get("/nodes/{node}/qemu/{vmid}/pending", params=NODE_VMID, proxyto="node")
def vm_pending(ctx, p):
    return G.with_guest(ctx, p, "qemu", G.pending_payload)


CONFIG_PARAMS = {**NODE_VMID, **OPTIONS, "delete": s(format="pve-configid-list"), "digest": DIGEST,
                 "force": b(), "revert": s(format="pve-configid-list"), "skiplock": b()}
CONFIG_PRIVS = ("VM.Config.Disk", "VM.Config.CDROM", "VM.Config.CPU", "VM.Config.Memory", "VM.Config.Network",
                "VM.Config.HWType", "VM.Config.Options", "VM.Config.Cloudinit")


def _config_checks(ctx, p):
    ctx.check(f"/vms/{p['vmid']}", *CONFIG_PRIVS, any=True)
    G.check_skiplock(ctx, p)
    if "force" in p and "delete" not in p:
        raise ApiError(400, "Parameter verification failed.", {"force": "missing property - 'delete' is required"})


@api.put("/nodes/{node}/qemu/{vmid}/config", params=CONFIG_PARAMS, proxyto="node")
def vm_config_put(ctx, p):
    """Sync config update."""
    _config_checks(ctx, p)
    guest = _vm(ctx, p)
    G.update_config(ctx, guest, p)
    return None


@api.post("/nodes/{node}/qemu/{vmid}/config", params={
    **CONFIG_PARAMS, "background_delay": i(minimum=1, maximum=30),
    "import-working-storage": s(format="pve-storage-id")}, proxyto="node")
def vm_config_post(ctx, p):
    """Async config update (qmconfig). `background_delay`: wait for the task like PVE does."""
    cluster = ctx.cluster
    _config_checks(ctx, p)
    guest = _vm(ctx, p)

    def worker(t):
        t.sleep(DURATION["config"])
        try:
            G.update_config(ctx, guest, p, log=t.log, in_task=True)
        except ApiError as exc:
            detail = "; ".join(f"{k}: {v}" for k, v in (exc.errors or {}).items())
            raise TaskError(f"{exc.message} {detail}".strip()) from None

    upid = cluster.tasks.start(node=guest.node, type="qmconfig", id=guest.vmid, user=ctx.authid, worker=worker)
    delay = p.get("background_delay")
    if delay:
        task = cluster.tasks.get(upid)
        deadline = time.monotonic() + delay
        while time.monotonic() < deadline and task.status == "running":
            time.sleep(0.02)
        if task.status == "stopped":
            if task.exitstatus == "OK":
                return None
            raise ApiError(500, f"failed to update VM {guest.vmid}: {task.exitstatus}")
    return upid


@api.put("/nodes/{node}/qemu/{vmid}/unlink", params={
    **NODE_VMID, "idlist": s(optional=False, format="pve-configid-list"), "force": b()}, proxyto="node")
def vm_unlink(ctx, p):
    ctx.check(f"/vms/{p['vmid']}", "VM.Config.Disk")
    guest = _vm(ctx, p)
    G.update_config(ctx, guest, {"delete": p["idlist"], "force": p.get("force")})
    return None


# ---- status -----------------------------------------------------------------------------------

@api.get("/nodes/{node}/qemu/{vmid}/status/current", params=NODE_VMID, proxyto="node")
def vm_status(ctx, p):
    return G.with_guest(ctx, p, "qemu", lambda guest: G.status_payload(ctx.cluster, guest))


def _power(ctx, p):
    ctx.check(f"/vms/{p['vmid']}", "VM.PowerMgmt")
    return _vm(ctx, p)


@api.post("/nodes/{node}/qemu/{vmid}/status/start", params={
    **NODE_VMID, "force-cpu": s(), "machine": s(prop=MACHINE), "migratedfrom": s(format="pve-node"),
    "migration_network": s(format="CIDR"), "migration_type": P.enum(["secure", "insecure"]),
    "nets-host-mtu": s(pattern=r"net\d+=\d+(,net\d+=\d+)*"), "skiplock": b(), "stateuri": s(max_length=128),
    "targetstorage": s(format="storage-pair-list"), "timeout": i(minimum=0), "with-conntrack-state": b(),
}, proxyto="node")
def vm_start(ctx, p):
    guest = _power(ctx, p)
    skiplock = G.check_skiplock(ctx, p)
    return G.start_guest(ctx.cluster, guest, ctx.authid, skiplock=skiplock)


@api.post("/nodes/{node}/qemu/{vmid}/status/stop", params={
    **NODE_VMID, "keepActive": b(), "migratedfrom": s(format="pve-node"), "overrule-shutdown": b(), "skiplock": b(),
    "timeout": i(minimum=0)}, proxyto="node")
def vm_stop(ctx, p):
    guest = _power(ctx, p)
    skiplock = G.check_skiplock(ctx, p)
    return G.stop_guest(ctx.cluster, guest, ctx.authid, skiplock=skiplock)


@api.post("/nodes/{node}/qemu/{vmid}/status/shutdown", params={
    **NODE_VMID, "forceStop": b(), "keepActive": b(), "skiplock": b(), "timeout": i(minimum=0)}, proxyto="node")
def vm_shutdown(ctx, p):
    cluster = ctx.cluster
    guest = _power(ctx, p)
    skiplock = G.check_skiplock(ctx, p)
    if guest.status == "running" and guest.qmpstatus == "paused":
        if not p.get("forceStop"):
            raise ApiError(500, "VM is paused - cannot shutdown")
        return G.stop_guest(cluster, guest, ctx.authid, skiplock=skiplock)
    return G.shutdown_guest(cluster, guest, ctx.authid, timeout=p.get("timeout"), force_stop=bool(p.get("forceStop")),
                            skiplock=skiplock)


@api.post("/nodes/{node}/qemu/{vmid}/status/reboot", params={**NODE_VMID, "timeout": i(minimum=0)}, proxyto="node")
def vm_reboot(ctx, p):
    cluster = ctx.cluster
    guest = _power(ctx, p)
    G.require_running(guest)
    if guest.qmpstatus == "paused":
        raise ApiError(500, "VM is paused - cannot shutdown")

    def effect():
        cluster.guest_stopped(guest)
        cluster.guest_started(guest)

    return G.running_guest_task(ctx, guest, "reboot", DURATION["shutdown"] + DURATION["start"], effect)


@api.post("/nodes/{node}/qemu/{vmid}/status/reset", params={**NODE_VMID, "skiplock": b()}, proxyto="node")
def vm_reset(ctx, p):
    guest = _power(ctx, p)
    skiplock = G.check_skiplock(ctx, p)
    G.require_running(guest)

    def effect():
        guest.started_at = time.time()
        guest.qmpstatus = "running"

    return G.running_guest_task(ctx, guest, "reset", DURATION["reset"], effect, skiplock)


@api.post("/nodes/{node}/qemu/{vmid}/status/suspend", params={
    **NODE_VMID, "skiplock": b(), "statestorage": s(format="pve-storage-id"), "todisk": b()}, proxyto="node")
def vm_suspend(ctx, p):
    cluster = ctx.cluster
    guest = _power(ctx, p)
    skiplock = G.check_skiplock(ctx, p)
    if "statestorage" in p and not p.get("todisk"):
        raise ApiError(400, "Parameter verification failed.", {"statestorage": "missing property - 'todisk' is required"})
    G.require_running(guest)
    if not p.get("todisk"):
        def pause():
            guest.qmpstatus = "paused"
        return G.running_guest_task(ctx, guest, "pause", DURATION["suspend"], pause, skiplock)
    ctx.check(f"/vms/{guest.vmid}", "VM.Config.Disk")
    volumes = [v for k, v in G.guest_volumes(guest, include_snapshots=False) if k != "vmstate"]
    storage = p.get("statestorage") or str(guest.config.get("vmstatestorage") or (volumes[0].split(":")[0] if volumes else "local"))
    G.check_storage(cluster, storage, guest.node, "images", param="statestorage")

    def worker(t):
        t.sleep(DURATION["suspend"])
        vol = G.allocate_volume(cluster, vmid=guest.vmid, node=guest.node, storage=storage, size=guest.maxmem() // 2,
                                content="images", name=f"vm-{guest.vmid}-state-suspend-{time.strftime('%Y-%m-%d')}")
        t.log(f"saving VM state and RAM using storage '{storage}'")
        t.sleep(DURATION["suspend"])
        t.log(f"completed saving the VM state in 1s, saved {G.human(vol.size * 0.7)}")
        with cluster.lock:
            G.still_exists(cluster, guest)
            cluster.guest_stopped(guest)
            guest.config["vmstate"] = vol.volid
            guest.config["lock"] = "suspended"

    return G.guest_task(cluster, guest, ctx.authid, "qmsuspend", worker, lock="suspending", skiplock=skiplock)


@api.post("/nodes/{node}/qemu/{vmid}/status/resume", params={
    **NODE_VMID, "nocheck": b(), "skiplock": b()}, proxyto="node")
def vm_resume(ctx, p):
    cluster = ctx.cluster
    guest = _power(ctx, p)
    skiplock = G.check_skiplock(ctx, p)
    if guest.lock == "suspended" and guest.status != "running":
        return G.start_guest(cluster, guest, ctx.authid, skiplock=skiplock)
    G.require_running(guest)

    def effect():
        guest.qmpstatus = "running"

    return G.running_guest_task(ctx, guest, "resume", DURATION["resume"], effect, skiplock)


# ---- destroy, clone, template, disks ------------------------------------------------------------

@api.delete("/nodes/{node}/qemu/{vmid}", params={
    **NODE_VMID, "destroy-unreferenced-disks": b(), "purge": b(), "skiplock": b()}, proxyto="node")
def vm_destroy(ctx, p):
    return G.destroy(ctx, _vm(ctx, p), p)


@api.post("/nodes/{node}/qemu/{vmid}/clone", params={
    **NODE_VMID, "newid": P.vmid(), "bwlimit": i(minimum=0), "description": s(),
    "format": P.enum(["raw", "qcow2", "vmdk"]), "full": b(), "name": s(format="dns-name"),
    "pool": s(format="pve-poolid"), "snapname": s(format="pve-configid", max_length=40),
    "storage": s(format="pve-storage-id"), "target": s(format="pve-node"),
}, proxyto="node")
def vm_clone(ctx, p):
    return G.clone(ctx, _vm(ctx, p), p)


@api.post("/nodes/{node}/qemu/{vmid}/template", params={**NODE_VMID, "disk": P.enum(G.disk_enum("qemu"))},
          proxyto="node")
def vm_template(ctx, p):
    return G.template(ctx, _vm(ctx, p), p)


@api.put("/nodes/{node}/qemu/{vmid}/resize", params={
    **NODE_VMID, "disk": P.enum(G.disk_enum("qemu"), optional=False), "size": s(optional=False, pattern=r"\+?\d+(\.\d+)?[KMGT]?"),
    "digest": DIGEST, "skiplock": b()}, proxyto="node")
def vm_resize(ctx, p):
    return G.resize(ctx, _vm(ctx, p), p)


@api.post("/nodes/{node}/qemu/{vmid}/move_disk", params={
    **NODE_VMID, "disk": P.enum(G.disk_enum("qemu") + [f"unused{n}" for n in range(256)], optional=False),
    "storage": s(format="pve-storage-id"), "format": P.enum(["raw", "qcow2", "vmdk"]), "delete": b(),
    "digest": DIGEST, "bwlimit": i(minimum=0)}, proxyto="node")
def vm_move_disk(ctx, p):
    return G.move_disk(ctx, _vm(ctx, p), p, "disk")


@api.get("/nodes/{node}/qemu/{vmid}/feature", params={
    **NODE_VMID, "feature": P.enum(["snapshot", "clone", "copy"], optional=False),
    "snapname": s(format="pve-configid", max_length=40)}, proxyto="node")
def vm_feature(ctx, p):
    return G.with_guest(ctx, p, "qemu", lambda guest: G.feature(ctx.cluster, guest, p["feature"], p.get("snapname")))


# ---- snapshots ----------------------------------------------------------------------------------

SNAP = {**NODE_VMID, "snapname": s(optional=False, format="pve-configid", max_length=40)}


@api.get("/nodes/{node}/qemu/{vmid}/snapshot", params=NODE_VMID, proxyto="node")
def vm_snapshots(ctx, p):
    return G.with_guest(ctx, p, "qemu", G.snapshot_list)


@api.post("/nodes/{node}/qemu/{vmid}/snapshot", params={**SNAP, "description": s(), "vmstate": b()}, proxyto="node")
def vm_snapshot_create(ctx, p):
    return G.snapshot_create(ctx, _vm(ctx, p), p)


@api.get("/nodes/{node}/qemu/{vmid}/snapshot/{snapname}", params=SNAP, proxyto="node")
def vm_snapshot_index(ctx, p):
    G.snapshot_get(_vm(ctx, p), p["snapname"])
    return [{"cmd": "rollback"}, {"cmd": "config"}]


@api.delete("/nodes/{node}/qemu/{vmid}/snapshot/{snapname}", params={**SNAP, "force": b()}, proxyto="node")
def vm_snapshot_delete(ctx, p):
    return G.snapshot_delete(ctx, _vm(ctx, p), p)


@api.post("/nodes/{node}/qemu/{vmid}/snapshot/{snapname}/rollback", params={**SNAP, "start": b()}, proxyto="node")
def vm_snapshot_rollback(ctx, p):
    return G.snapshot_rollback(ctx, _vm(ctx, p), p)


@api.get("/nodes/{node}/qemu/{vmid}/snapshot/{snapname}/config", params=SNAP, proxyto="node")
def vm_snapshot_config(ctx, p):
    return G.with_guest(ctx, p, "qemu", lambda guest: G.config_payload(guest, p["snapname"]),
                        "VM.Snapshot", "VM.Snapshot.Rollback", "VM.Audit")


@api.put("/nodes/{node}/qemu/{vmid}/snapshot/{snapname}/config", params={**SNAP, "description": s()}, proxyto="node")
def vm_snapshot_config_put(ctx, p):
    return G.with_guest(ctx, p, "qemu", lambda guest: G.snapshot_update(guest, p), "VM.Snapshot")


# ---- metrics and agent ------------------------------------------------------------------------

@api.get("/nodes/{node}/qemu/{vmid}/rrddata", params=G.rrd_params(), proxyto="node")
def vm_rrddata(ctx, p):
    return G.with_guest(ctx, p, "qemu", lambda guest: G.guest_rrddata(ctx.cluster, guest, p["timeframe"]))


@api.get("/nodes/{node}/qemu/{vmid}/agent/network-get-interfaces", params=NODE_VMID, proxyto="node")
def vm_agent_interfaces(ctx, p):
    ctx.check(f"/vms/{p['vmid']}", "VM.GuestAgent.Audit", "VM.GuestAgent.Unrestricted", any=True)
    with ctx.cluster.lock:
        guest = _vm(ctx, p)
        agent = parse_props(str(guest.config.get("agent", "0")), default_key="enabled").get("enabled", "0")
        if agent not in ("1", "on", "yes", "true"):
            raise ApiError(500, "No QEMU guest agent configured")
        if guest.status != "running":
            raise ApiError(500, f"VM {guest.vmid} is not running")
        if guest.uptime < 5 and guest.started_at:
            raise ApiError(500, "QEMU guest agent is not running")
        result = [{"name": "lo", "hardware-address": "00:00:00:00:00:00", "statistics": _stats(0),
                   "ip-addresses": [{"ip-address": "127.0.0.1", "ip-address-type": "ipv4", "prefix": 8},
                                    {"ip-address": "::1", "ip-address-type": "ipv6", "prefix": 128}]}]
        for idx, key in enumerate(sorted((k for k in guest.config if k.startswith("net") and k[3:].isdigit()),
                                         key=lambda k: int(k[3:]))):
            n = int(key[3:])
            net = G.QEMU_NET.parse(str(guest.config[key]))
            mac = str(net.get("macaddr", "")).lower()
            ipconf = parse_props(str(guest.config.get(f"ipconfig{n}", "ip=dhcp")))
            ip = ipconf.get("ip", "dhcp")
            addr, prefix = (ip.split("/") if "/" in ip else (f"10.{20 + n}.{guest.vmid // 250 % 250}.{guest.vmid % 250 + 2}", "24"))
            result.append({"name": f"ens{18 + n}", "hardware-address": mac, "statistics": _stats(guest.uptime),
                           "ip-addresses": [{"ip-address": addr, "ip-address-type": "ipv4", "prefix": int(prefix)},
                                            {"ip-address": _link_local(mac), "ip-address-type": "ipv6", "prefix": 64}]})
        return {"result": result}


def _stats(uptime: int) -> dict:
    return {"rx-bytes": uptime * 40_000, "rx-packets": uptime * 30, "rx-errs": 0, "rx-dropped": 0,
            "tx-bytes": uptime * 25_000, "tx-packets": uptime * 20, "tx-errs": 0, "tx-dropped": 0}


def _link_local(mac: str) -> str:
    parts = [int(x, 16) for x in mac.split(":")] if mac.count(":") == 5 else [0] * 6
    parts[0] ^= 2
    eui = parts[:3] + [0xFF, 0xFE] + parts[3:]
    return "fe80::" + ":".join(f"{eui[i] << 8 | eui[i + 1]:x}" for i in range(0, 8, 2))
