"""Shared guest machinery for qemu.py and lxc.py, and the helpers other modules call.

Public helpers (all take the cluster; the ones that change state take `cluster.lock` themselves):

    check_lock(guest, skiplock=False)                  raise 500 `VM is locked (<lock>)`
    lock_guest(cluster, guest, lock, skiplock=False)   check + set `lock: <lock>` (sync, raises ApiError)
    unlock_guest(cluster, guest, lock=None)            clear the lock (only if it is `lock`, when given)
    assert_digest(guest, digest)                       500 `detected modified configuration ...`
    config_payload(guest, snapshot=None)               GET .../config body (with digest)
    allocate_disks(cluster, *, guest, keys=None, log=None) -> [volid]
                                                       turn `STORAGE:SIZE` specs in guest.config into volids
    check_disk_storages(ctx, node, type, values)       sync checks of `STORAGE:SIZE` specs (exists, node, content)
    allocate_volume(cluster, *, vmid, node, storage, size, content, fmt=None, prefix="vm") -> Volume
    guest_volumes(guest) -> [(key, volid)]             volumes a config references (disks, unused, vmstate)
    destroy_volumes(cluster, guest, volids)            remove volumes of a guest from their storage
    generate_mac(cluster) -> "BC:24:11:xx:xx:xx"
    status_payload(cluster, guest) / list_item(cluster, guest)
    guest_rrddata(cluster, guest, timeframe)
    ha_sid(guest) / ha_managed(cluster, guest)
    start_guest(cluster, guest, user, *, skiplock=False, via_ha=True) -> upid   (qmstart / vzstart / hastart)
    stop_guest(cluster, guest, user, *, skiplock=False, via_ha=True) -> upid    (qmstop / vzstop / hastop)
    shutdown_guest(cluster, guest, user, *, timeout=None, force_stop=False, via_ha=True) -> upid
    guest_task(cluster, guest, user, type, worker, *, lock=None, lock_in_task=False) -> upid
    ha_configured(cluster, guest) / ha_add(cluster, guest, state)
    purge_references(cluster, guest, purge, log)       pools/ACL/firewall; with purge backup jobs + HA

Shared route bodies (ctx = request context, p = validated params), used by qemu.py and lxc.py:
    update_config, destroy, clone, template, resize, move_disk, snapshot_create/_rollback/_delete/_list.

Workers follow the tasks.py rule: sleep/checkpoint before applying effects, release locks in finally.
"""

from __future__ import annotations

import random
import re
import time
import uuid
from typing import Any, Callable
from urllib.parse import unquote

from ..errors import ApiError, TaskError
from ..params import FORMATS, FormatError, P, Param, PropString, parse_props
from ..scenario import format_size, is_disk_key, parse_size
from ..state import GiB, MiB, Cluster, Guest, Volume
from .cluster import guest_disk_size, guest_usage
from .nodes import rrd_series

QEMU_DISK_BUSES = {"ide": 4, "sata": 6, "scsi": 31, "virtio": 16}
TASK_TYPES = {
    "qemu": {"create": "qmcreate", "start": "qmstart", "stop": "qmstop", "shutdown": "qmshutdown",
             "reboot": "qmreboot", "reset": "qmreset", "suspend": "qmsuspend", "pause": "qmpause",
             "resume": "qmresume", "destroy": "qmdestroy", "clone": "qmclone", "template": "qmtemplate",
             "snapshot": "qmsnapshot", "rollback": "qmrollback", "delsnapshot": "qmdelsnapshot",
             "move": "qmmove", "resize": "resize", "config": "qmconfig", "restore": "qmrestore"},
    "lxc": {"create": "vzcreate", "start": "vzstart", "stop": "vzstop", "shutdown": "vzshutdown",
            "reboot": "vzreboot", "suspend": "vzsuspend", "resume": "vzresume", "destroy": "vzdestroy",
            "clone": "vzclone", "template": "vztemplate", "snapshot": "vzsnapshot", "rollback": "vzrollback",
            "delsnapshot": "vzdelsnapshot", "move": "move_volume", "resize": "resize", "restore": "vzrestore"},
}
# Simulated seconds a task takes (scaled by the clock).
DURATION = {"start": 2.0, "stop": 1.0, "shutdown": 4.0, "reset": 0.5, "suspend": 1.0, "resume": 0.5,
            "create": 5.0, "destroy": 2.0, "clone_full": 20.0, "clone_linked": 2.0, "template": 3.0,
            "snapshot": 3.0, "rollback": 3.0, "delsnapshot": 2.0, "move": 15.0, "resize": 1.0, "ha": 0.3,
            "config": 0.5}

NEW_DISK_RE = re.compile(r"^([a-z][a-z0-9\-_.]*[a-z0-9]):(\d+(?:\.\d+)?)$")
CONFIG_ID_RE = re.compile(r"^[a-z][a-z0-9_-]+$")


# ---- formats the schema names that pvesim checks itself ------------------------------------

def _check_size(value: str) -> None:
    if not re.fullmatch(r"\d+(\.\d+)?[KMGT]?", value):
        raise FormatError(f"unable to parse size '{value}'")


def _check_urlencoded(value: str) -> None:
    if not re.fullmatch(r"[%a-zA-Z0-9\-_.!~*'()]*", value):
        raise FormatError(f"invalid urlencoded string: {value}")


def _cidr_or(value: str, words: tuple[str, ...], version: int, what: str) -> None:
    import ipaddress
    if value in words:
        return
    try:
        net = ipaddress.ip_interface(value)
        if "/" not in value or net.version != version:
            raise ValueError
    except ValueError:
        raise FormatError(f"invalid {what} configuration '{value}'") from None


def _check_ipv4_config(value: str) -> None:
    _cidr_or(value, ("dhcp", "manual"), 4, "IPv4")


def _check_ipv6_config(value: str) -> None:
    _cidr_or(value, ("auto", "dhcp", "manual"), 6, "IPv6")


IPCONFIG = PropString({"ip": P.string(format="pve-ipv4-config"), "gw": P.string(format="ip"),
                       "ip6": P.string(format="pve-ipv6-config"), "gw6": P.string(format="ip")})

_PCI_ID = r"(?:[a-fA-F0-9]{4,}:)?[a-fA-F0-9]{2}:[a-fA-F0-9]{2}(?:\.[a-fA-F0-9])?"
_HEX_ID = r"0x[0-9a-fA-F]{4}"
HOSTPCI = PropString({
    "host": P.string(pattern=rf"{_PCI_ID}(;{_PCI_ID})*"), "mapping": P.string(format="pve-configid"),
    "pcie": P.boolean(), "x-vga": P.boolean(), "rombar": P.boolean(), "romfile": P.string(),
    "mdev": P.string(), "legacy-igd": P.boolean(), "driver": P.enum(["keep", "vfio"]),
    "vendor-id": P.string(pattern=_HEX_ID), "device-id": P.string(pattern=_HEX_ID),
    "sub-vendor-id": P.string(pattern=_HEX_ID), "sub-device-id": P.string(pattern=_HEX_ID),
}, default_key="host")


def _check_hostpci(value: str) -> None:
    """pve-qm-hostpci: a property string with exactly one of host/mapping (qemu-server PCI.pm)."""
    try:
        res = HOSTPCI.parse(value)
    except FormatError:
        raise FormatError(f"unable to parse value '{value}'") from None
    if "host" in res and "mapping" in res:
        raise FormatError("Cannot set both 'host' and 'mapping'.")
    if "host" not in res and "mapping" not in res:
        raise FormatError("Either 'host' or 'mapping' must be set.")


def _check_ipconfig(value: str) -> None:
    IPCONFIG.parse(value)


for _name, _fn in {"disk-size": _check_size, "urlencoded": _check_urlencoded, "pve-qm-hostpci": _check_hostpci,
                   "pve-qm-ipconfig": _check_ipconfig, "pve-ipv4-config": _check_ipv4_config,
                   "pve-ipv6-config": _check_ipv6_config}.items():
    FORMATS.setdefault(_name, _fn)


# ---- shared parameter declarations (names and types as in the official schema) ------------

def drive_prop(bus: str) -> PropString:
    """Property string of a qemu drive (`[file=]<volume>,size=..,...`) for one bus."""
    keys: dict[str, Param] = {
        "file": P.string(optional=False, format="pve-volume-id-or-qm-path"), "size": P.string(format="disk-size"),
        "format": P.enum(["raw", "qcow", "qed", "qcow2", "vmdk", "cloop"]), "media": P.enum(["cdrom", "disk"]),
        "import-from": P.string(format="pve-volume-id-or-absolute-path"),
    }
    if bus in ("efidisk",):
        keys.update({"efitype": P.enum(["2m", "4m"]), "pre-enrolled-keys": P.boolean(),
                     "ms-cert": P.enum(["2011", "2023", "2023w", "2023k"])})
        del keys["media"]
    elif bus == "tpmstate":
        keys.update({"version": P.enum(["v1.2", "v2.0"])})
        keys["format"] = P.enum(["raw", "qcow2", "vmdk"])
        del keys["media"]
    else:
        for name in ("backup", "detect_zeroes", "replicate", "shared", "snapshot"):
            keys[name] = P.boolean()
        for name in ("bps", "bps_rd", "bps_wr", "iops", "iops_max", "iops_rd", "iops_rd_max", "iops_wr", "iops_wr_max"):
            keys[name] = P.integer()
        for name in ("bps_max_length", "bps_rd_max_length", "bps_wr_max_length", "iops_max_length",
                     "iops_rd_max_length", "iops_wr_max_length"):
            keys[name] = P.integer(minimum=1)
        for name in ("mbps", "mbps_max", "mbps_rd", "mbps_rd_max", "mbps_wr", "mbps_wr_max"):
            keys[name] = P.number()
        keys.update({
            "aio": P.enum(["native", "threads", "io_uring"]),
            "cache": P.enum(["none", "writethrough", "writeback", "unsafe", "directsync"]),
            "discard": P.enum(["ignore", "on"]), "rerror": P.enum(["ignore", "report", "stop"]),
            "werror": P.enum(["enospc", "ignore", "report", "stop"]), "serial": P.string(max_length=60, format="urlencoded"),
        })
        if bus in ("ide", "sata", "scsi"):
            keys["ssd"] = P.boolean()
            keys["wwn"] = P.string(pattern=r"(0x)[0-9a-fA-F]{16}")
        if bus in ("scsi", "virtio"):
            keys["iothread"] = P.boolean()
            keys["ro"] = P.boolean()
        if bus == "scsi":
            keys.update({"product": P.string(pattern=r"[A-Za-z0-9\-_\s]{,16}"), "queues": P.integer(minimum=2),
                         "scsiblock": P.boolean(), "vendor": P.string(pattern=r"[A-Za-z0-9\-_\s]{,8}")})
        if bus == "ide":
            keys["model"] = P.string(max_length=120, format="urlencoded")
    aliases = {"volume": ("file", "file")}  # `volume=` is an alias of `file=`
    if bus not in ("efidisk", "tpmstate"):
        for alias, target in (("bps_rd_length", "bps_rd_max_length"), ("bps_wr_length", "bps_wr_max_length"),
                              ("iops_rd_length", "iops_rd_max_length"), ("iops_wr_length", "iops_wr_max_length")):
            aliases[alias] = (target, target)
    return PropString(keys, default_key="file", key_aliases=aliases)


QEMU_NET_MODELS = ["e1000", "e1000-82540em", "e1000-82544gc", "e1000-82545em", "e1000e", "i82551", "i82557b",
                   "i82559er", "ne2k_isa", "ne2k_pci", "pcnet", "rtl8139", "virtio", "vmxnet3"]
QEMU_NET = PropString({
    "model": P.enum(QEMU_NET_MODELS, optional=False), "macaddr": P.string(format="mac-addr"),
    "bridge": P.string(format="pve-bridge-id"), "firewall": P.boolean(), "link_down": P.boolean(),
    "mtu": P.integer(minimum=1, maximum=65520), "queues": P.integer(minimum=0, maximum=64),
    "rate": P.number(minimum=0), "tag": P.integer(minimum=1, maximum=4094),
    "trunks": P.string(pattern=r"\d+(?:-\d+)?(?:;\d+(?:-\d+)?)*"),
}, default_key="model", key_aliases={m: ("model", "macaddr") for m in QEMU_NET_MODELS})

LXC_NET = PropString({
    "name": P.string(optional=False, pattern=r"[-_.\w\d]+"), "bridge": P.string(pattern=r"[-_.\w\d]+"),
    "firewall": P.boolean(), "gw": P.string(format="ipv4"), "gw6": P.string(format="ipv6"),
    "host-managed": P.boolean(), "hwaddr": P.string(format="mac-addr"), "ip": P.string(format="pve-ipv4-config"),
    "ip6": P.string(format="pve-ipv6-config"), "link_down": P.boolean(), "mtu": P.integer(minimum=64, maximum=65535),
    "rate": P.number(), "tag": P.integer(minimum=1, maximum=4094), "trunks": P.string(pattern=r"\d+(?:;\d+)*"),
    "type": P.enum(["veth"]),
})
_MOUNTOPTS = r"(discard|lazytime|noatime|nodev|noexec|nosuid)(;(discard|lazytime|noatime|nodev|noexec|nosuid))*"
LXC_ROOTFS = PropString({
    "volume": P.string(optional=False, format="pve-lxc-mp-string"), "size": P.string(format="disk-size"),
    "acl": P.boolean(), "mountoptions": P.string(pattern=_MOUNTOPTS), "quota": P.boolean(), "replicate": P.boolean(),
    "ro": P.boolean(), "shared": P.boolean(),
}, default_key="volume")
LXC_MP = PropString({**LXC_ROOTFS.keys, "mp": P.string(optional=False, format="pve-lxc-mp-string"),
                     "backup": P.boolean(), "keepattrs": P.boolean()}, default_key="volume")
LXC_FEATURES = PropString({"force_rw_sys": P.boolean(), "fuse": P.boolean(), "keyctl": P.boolean(),
                           "mknod": P.boolean(), "mount": P.string(pattern=r"[a-zA-Z0-9_; ]+"), "nesting": P.boolean()})


def disk_enum(type_: str) -> list[str]:
    """The `disk` enum of resize/move_disk/template (qemu) or resize/move_volume (lxc)."""
    if type_ == "lxc":
        return ["rootfs"] + [f"mp{i}" for i in range(256)]
    out = [f"{bus}{i}" for bus, n in QEMU_DISK_BUSES.items() for i in range(n)]
    return out + ["efidisk0", "tpmstate0"]


# ---- locks, digest, config ------------------------------------------------------------------

def kind(guest: Guest) -> str:
    return "VM" if guest.type == "qemu" else "CT"


def locked_message(guest: Guest) -> str:
    return f"{kind(guest)} is locked ({guest.lock})"


def check_lock(guest: Guest, skiplock: bool = False) -> None:
    """Raise PVE's sync 500 `VM is locked (<lock>)` unless unlocked (or skiplock)."""
    if guest.lock and not skiplock:
        raise ApiError(500, locked_message(guest))


def check_skiplock(ctx, p: dict) -> bool:
    """`skiplock` is root@pam only (qemu-server: `Only root may use this option.`)."""
    if p.get("skiplock"):
        if not ctx.is_root:
            raise ApiError(400, "Parameter verification failed.", {"skiplock": "Only root may use this option."})
        return True
    return False


def lock_guest(cluster: Cluster, guest: Guest, lock: str, skiplock: bool = False) -> None:
    """Check the guest is unlocked, then set `lock: <lock>` (raises ApiError 500 when locked)."""
    with cluster.lock:
        check_lock(guest, skiplock)
        guest.config["lock"] = lock


def unlock_guest(cluster: Cluster, guest: Guest, lock: str | None = None) -> None:
    """Remove the lock (only if it is still `lock`, when given)."""
    with cluster.lock:
        if lock is None or guest.config.get("lock") == lock:
            guest.config.pop("lock", None)


def assert_digest(guest: Guest, digest: str | None) -> None:
    if digest and digest != guest.digest():
        raise ApiError(500, "detected modified configuration - file changed by other user? Try again.")


SECRET_KEYS = {"cipassword"}


def config_payload(guest: Guest, snapshot: str | None = None) -> dict:
    """The body of GET .../config: config keys (secrets masked) plus digest; or a snapshot's config."""
    if snapshot:
        snap = guest.snapshots.get(snapshot)
        if snap is None:
            raise ApiError(500, f"snapshot '{snapshot}' does not exist")
        out = dict(snap.config)
        out.update({"snaptime": snap.snaptime, "description": snap.description})
        if snap.parent:
            out["parent"] = snap.parent
    else:
        out = dict(guest.config)
        if guest.parent_snapshot:
            out["parent"] = guest.parent_snapshot
    for key in SECRET_KEYS:
        if key in out:
            out[key] = "**********"
    out["digest"] = guest.digest()
    return out


def pending_payload(guest: Guest) -> list[dict]:
    """pvesim applies every change at once (also to running guests), so nothing is ever pending."""
    out = []
    for key in sorted(guest.config):
        value = "**********" if key in SECRET_KEYS else guest.config[key]
        out.append({"key": key, "value": value})
    return out


def ha_sid(guest: Guest) -> str:
    return f"{'vm' if guest.type == 'qemu' else 'ct'}:{guest.vmid}"


def ha_managed(cluster: Cluster, guest: Guest) -> bool:
    """Whether an HA resource exists for the guest (asks the HA manager, whatever it offers)."""
    ha = cluster.ha
    if ha is None:
        return False
    sid = ha_sid(guest)
    for name in ("has_resource", "is_managed"):
        fn = getattr(ha, name, None)
        if callable(fn):
            return bool(fn(sid))
    resources = getattr(ha, "resources", None)
    if isinstance(resources, dict):
        return sid in resources
    return ha.service_state(sid) is not None


def ha_status(cluster: Cluster, guest: Guest) -> dict:
    if not ha_managed(cluster, guest):
        return {"managed": 0}
    state = cluster.ha.service_state(ha_sid(guest))
    out: dict[str, Any] = {"managed": 1}
    if state:
        out["state"] = state
    return out


# ---- storage and disks ------------------------------------------------------------------------

def new_disk_spec(value: str) -> tuple[str, float] | None:
    """`ceph-rbd:32` (new 32 GiB disk) -> ("ceph-rbd", 32.0); anything else -> None."""
    first = str(value).split(",", 1)[0]
    if first.startswith("file=") or first.startswith("volume="):
        first = first.split("=", 1)[1]
    m = NEW_DISK_RE.match(first)
    return (m.group(1), float(m.group(2))) if m else None


def disk_volid(key: str, value: str) -> str | None:
    """The volume a disk/mount/unused config entry points at (None for cdrom `none`, paths, new specs)."""
    props = parse_props(str(value), default_key="volume" if key == "rootfs" or key.startswith("mp") else "file")
    vol = props.get("file") or props.get("volume")
    if not vol or ":" not in vol or vol.startswith("/") or new_disk_spec(vol):
        return None
    return vol


def is_cdrom(value: str) -> bool:
    return "media=cdrom" in str(value)


def check_storage(cluster: Cluster, storage_id: str, node: str, content: str, param: str = "storage"):
    """Sync checks before allocating on a storage: exists, available on node, holds `content`."""
    st = cluster.storage(storage_id, node)
    if content not in st.content:
        what = "vm images" if content == "images" else "container directories"
        raise ApiError(400, "Parameter verification failed.", {param: f"storage '{storage_id}' does not support {what}"})
    return st


def check_disk_storages(ctx, node: str, type_: str, values: dict[str, str]) -> None:
    """Check every `STORAGE:SIZE` spec (and referenced volumes) of a create/config call, synchronously."""
    cluster = ctx.cluster
    content = "images" if type_ == "qemu" else "rootdir"
    for key, value in values.items():
        spec = new_disk_spec(value)
        if spec:
            storage_id = spec[0]
            if is_cdrom(value) and "cloudinit" not in str(value):
                continue
            check_storage(cluster, storage_id, node, content)
            ctx.check(f"/storage/{storage_id}", "Datastore.AllocateSpace")
            continue
        first = str(value).split(",", 1)[0].split("=", 1)[-1]
        if first.endswith(":cloudinit"):
            check_storage(cluster, first.split(":", 1)[0], node, "images")
            continue
        volid = disk_volid(key, value)
        if volid:
            cluster.storage(volid.split(":", 1)[0], node)
            if cluster.find_volume(volid, node) is None:
                raise ApiError(500, f"volume '{volid}' does not exist")


def allocate_volume(cluster: Cluster, *, vmid: int, node: str, storage: str, size: int, content: str,
                    fmt: str | None = None, prefix: str | None = None, name: str | None = None,
                    parent: str | None = None) -> Volume:
    """Allocate a new volume (next free `vm-<vmid>-disk-N`) on a storage; TaskError when it is full."""
    with cluster.lock:
        st = cluster.storages[storage]
        vol_node = None if st.shared else node
        free = st.total - cluster.storage_used(storage, vol_node)
        if size > free:
            raise TaskError(f"unable to create image: not enough free space on storage '{storage}' "
                            f"(requested {format_size(size)}, available {free // GiB}G)")
        if fmt is None:
            fmt = "raw"
        if prefix is None:
            prefix = "subvol" if content == "rootdir" and st.type in ("zfspool", "btrfs") else "vm"
        if st.is_file_based and fmt == "subvol":
            fmt = "raw"
        if name:
            volid = f"{storage}:{vmid}/{name}" if st.is_file_based else f"{storage}:{name}"
        else:
            volid = cluster.alloc_disk_name(storage, vmid, vol_node, prefix=prefix,
                                            fmt=fmt if st.is_file_based else "raw")
        if parent:
            base = parent.split(":", 1)[1]
            volid = f"{storage}:{base}/{volid.split(':', 1)[1]}"
        vol = Volume(volid=volid, storage=storage, content=content, size=size,
                     format="subvol" if prefix == "subvol" else fmt, vmid=vmid, node=vol_node, parent=parent)
        return cluster.add_volume(vol)


def _replace_file(value: str, volid: str, size: int | None, drop: tuple[str, ...] = ("import-from",),
                  key: str = "file") -> str:
    parts = [p for p in str(value).split(",") if p]
    rest = [p for p in parts[1:] if p.split("=", 1)[0] not in drop + ("size",)]
    if parts and "=" in parts[0] and parts[0].split("=", 1)[0] not in ("file", "volume"):
        rest = [p for p in parts if p.split("=", 1)[0] not in drop + ("size", "file", "volume")]
    out = [volid] + rest
    if size is not None:
        out.append(f"size={format_size(size)}")
    return ",".join(out)


def allocate_disks(cluster: Cluster, *, guest: Guest, keys: list[str] | None = None,
                   log: Callable[[str], None] | None = None) -> list[str]:
    """Replace `STORAGE:SIZE` specs (and `STORAGE:cloudinit`) in guest.config by new volumes.

    Returns the volids created; raises TaskError (nothing left allocated) when a storage is full.
    """
    created: list[str] = []
    content = "images" if guest.type == "qemu" else "rootdir"
    try:
        for key in list(keys if keys is not None else guest.config):
            value = str(guest.config.get(key, ""))
            if not (is_disk_key(key) or key.startswith("mp")):
                continue
            first = value.split(",", 1)[0].split("=", 1)[-1]
            if guest.type == "qemu" and first.endswith(":cloudinit"):
                storage = first.split(":", 1)[0]
                vol = allocate_volume(cluster, vmid=guest.vmid, node=guest.node, storage=storage, size=4 * MiB,
                                      content="images", name=f"vm-{guest.vmid}-cloudinit"
                                      + (".qcow2" if cluster.storages[storage].is_file_based else ""))
                guest.config[key] = _replace_file(value, vol.volid, None) + ("" if "media=cdrom" in value else ",media=cdrom")
                created.append(vol.volid)
                if log:
                    log(f"{key}: successfully created disk '{guest.config[key]}'")
                continue
            spec = new_disk_spec(value)
            if not spec:
                continue
            storage, gib = spec
            props = parse_props(value, default_key="volume" if guest.type == "lxc" else "file")
            size = int(gib * GiB)
            if key.startswith("efidisk"):
                size = 528 * 1024 if props.get("efitype") == "4m" else 128 * 1024
            elif key.startswith("tpmstate"):
                size = 4 * MiB
            source = props.get("import-from")
            if source:
                src = cluster.find_volume(source, guest.node)
                if src is None:
                    raise TaskError(f"volume '{source}' does not exist")
                size = src.size
            vol = allocate_volume(cluster, vmid=guest.vmid, node=guest.node, storage=storage, size=size,
                                  content=content, fmt=props.get("format"))
            created.append(vol.volid)
            guest.config[key] = _replace_file(value, vol.volid, size)
            if log:
                if source:
                    log(f"importing disk '{source}' to VM {guest.vmid} ...")
                    log(f"transferred {human(size)} of {human(size)} (100.00%)")
                log(f"{key}: successfully created disk '{guest.config[key]}'" if guest.type == "qemu"
                    else f"allocated volume {vol.volid} ({format_size(size)}) for {key}")
    except Exception:
        with cluster.lock:
            for volid in created:
                cluster.remove_volume(volid, guest.node)
        raise
    return created


def guest_volumes(guest: Guest, include_snapshots: bool = True) -> list[tuple[str, str]]:
    """(config key, volid) for each volume the guest references (cdroms/ISOs excluded)."""
    out: list[tuple[str, str]] = []
    seen: set[str] = set()
    configs = [guest.config] + ([s.config for s in guest.snapshots.values()] if include_snapshots else [])
    for conf in configs:
        for key, value in conf.items():
            if key == "vmstate":
                volid = str(value)
            elif is_disk_key(key) or key.startswith("mp"):
                if is_cdrom(value) and "cloudinit" not in str(value):
                    continue
                volid = disk_volid(key, value)
            else:
                continue
            if volid and volid not in seen:
                seen.add(volid)
                out.append((key, volid))
    for snap in (guest.snapshots.values() if include_snapshots else []):
        state = snap.config.get("vmstate")
        if state and state not in seen:
            seen.add(state)
            out.append(("vmstate", state))
    return out


def destroy_volumes(cluster: Cluster, guest: Guest, volids: list[str]) -> None:
    with cluster.lock:
        for volid in volids:
            cluster.remove_volume(volid, guest.node)


def linked_children(cluster: Cluster, volid: str) -> list[str]:
    return [v.volid for v in cluster.volumes.values() if v.parent == volid]


def next_unused_key(config: dict) -> str:
    n = 0
    while f"unused{n}" in config:
        n += 1
    return f"unused{n}"


def human(size: float) -> str:
    """PVE's render_bytes: `1.0 GiB`, `330.2 MiB`, `0.0 B`."""
    units = ["B", "KiB", "MiB", "GiB", "TiB"]
    value, i = float(size), 0
    while value >= 1024 and i < len(units) - 1:
        value /= 1024
        i += 1
    return f"{value:.1f} {units[i]}" if i else f"{value:.1f} B"


def copy_progress(t, total_bytes: int, seconds: float, steps: int = 10, mirror: str | None = None) -> None:
    """Log progress lines spread over `seconds`: qemu-img's `transferred X of Y (P%)` for a stopped
    guest, or drive-mirror's `drive-scsi0: transferred X of Y (P%) in Ns` when `mirror` names the drive."""
    def line(done: int, elapsed: float) -> str:
        text = f"transferred {human(done)} of {human(total_bytes)} ({done * 100 / max(total_bytes, 1):.2f}%)"
        if mirror is None:
            return text
        minutes, secs = divmod(int(elapsed), 60)
        return f"drive-{mirror}: {text} in {f'{minutes}m ' if minutes else ''}{secs}s"

    t.log(line(0, 0))
    for i in range(1, steps + 1):
        t.sleep(seconds / steps)
        t.log(line(total_bytes * i // steps, seconds * i / steps))


# ---- MACs ---------------------------------------------------------------------------------

_mac_random = random.Random()


def used_macs(cluster: Cluster) -> set[str]:
    macs = set()
    for guest in cluster.guests.values():
        for key, value in guest.config.items():
            if key.startswith("net"):
                for m in re.findall(r"[0-9A-Fa-f]{2}(?::[0-9A-Fa-f]{2}){5}", str(value)):
                    macs.add(m.upper())
    return macs


def generate_mac(cluster: Cluster) -> str:
    """A fresh unicast MAC with Proxmox's OUI (BC:24:11), unique in the cluster."""
    taken = used_macs(cluster)
    while True:
        mac = "BC:24:11:" + ":".join(f"{_mac_random.randrange(256):02X}" for _ in range(3))
        if mac not in taken:
            return mac


def with_mac(cluster: Cluster, type_: str, value: str, regenerate: bool = False) -> str:
    """Fill in (or replace) the MAC of a net[n] value: qemu `virtio=MAC`, lxc `hwaddr=MAC`."""
    if type_ == "qemu":
        props = QEMU_NET.parse(value)
        if props.get("macaddr") and not regenerate:
            return value
        model = props.get("model", "virtio")
        mac = generate_mac(cluster)
        rest = [p for p in value.split(",") if p and not (p.split("=", 1)[0] in QEMU_NET_MODELS + ["macaddr", "model"]
                                                        or (p in QEMU_NET_MODELS))]
        return ",".join([f"{model}={mac}"] + rest)
    props = parse_props(value)
    if props.get("hwaddr") and not regenerate:
        return value
    mac = generate_mac(cluster)
    parts = [p for p in value.split(",") if p and not p.startswith("hwaddr=")]
    out = []
    for p in parts:
        out.append(p)
        if p.startswith("bridge="):
            out.append(f"hwaddr={mac}")
    if f"hwaddr={mac}" not in out:
        out.insert(1 if out else 0, f"hwaddr={mac}")
    return ",".join(out)


def regenerate_macs(cluster: Cluster, guest: Guest) -> None:
    for key in [k for k in guest.config if re.fullmatch(r"net\d+", k)]:
        guest.config[key] = with_mac(cluster, guest.type, str(guest.config[key]), regenerate=True)


# ---- status payloads ----------------------------------------------------------------------------

def _pid(guest: Guest) -> int:
    return 100000 + guest.vmid % 900000


def status_payload(cluster: Cluster, guest: Guest) -> dict:
    """GET .../status/current."""
    usage = guest_usage(cluster, guest)
    running = usage["uptime"] > 0 or guest.status == "running"
    out: dict[str, Any] = {
        "vmid": guest.vmid, "name": guest.name, "status": "running" if running else "stopped",
        "cpus": guest.maxcpu(), "maxmem": guest.maxmem(), "maxdisk": guest_disk_size(guest),
        "cpu": usage["cpu"], "mem": usage["mem"], "uptime": usage["uptime"], "netin": usage["netin"],
        "netout": usage["netout"], "diskread": usage["diskread"], "diskwrite": usage["diskwrite"],
        "ha": ha_status(cluster, guest),
    }
    if guest.type == "qemu":
        out["qmpstatus"] = guest.qmpstatus if running else "stopped"
        out["disk"] = 0
        out["memhost"] = usage["mem"]
        agent = parse_props(str(guest.config.get("agent", "0")), default_key="enabled").get("enabled", "0")
        out["agent"] = 1 if agent in ("1", "on", "yes", "true") else 0
        if running:
            out["running-machine"] = "pc-q35-10.1+pve0" if "q35" in str(guest.config.get("machine", "")) else "pc-i440fx-10.1+pve0"
            out["running-qemu"] = "10.1.2"
            out["balloon"] = guest.maxmem()
            out["freemem"] = max(guest.maxmem() - usage["mem"], 0)
    else:
        out["type"] = "lxc"
        swap = int(guest.config.get("swap", 512)) * MiB
        out["maxswap"] = swap
        out["swap"] = 0
        out["disk"] = int(guest_disk_size(guest) * 0.35) if running else 0
    if running:
        out["pid"] = _pid(guest)
    if guest.lock:
        out["lock"] = guest.lock
    if guest.config.get("tags"):
        out["tags"] = guest.config["tags"]
    if guest.is_template:
        out["template"] = 1
    return out


def list_item(cluster: Cluster, guest: Guest, full: bool = False) -> dict:
    """An item of GET /nodes/{node}/qemu|lxc (qemu `full=1` adds the QMP status and machine)."""
    out = status_payload(cluster, guest)
    out.pop("ha", None)
    drop = ["balloon", "freemem", "agent", "memhost"]
    if not full:
        drop += ["qmpstatus", "running-machine", "running-qemu"]
    for key in drop:
        out.pop(key, None)
    return out


def guest_rrddata(cluster: Cluster, guest: Guest, timeframe: str) -> list[dict]:
    usage = guest_usage(cluster, guest)
    maxmem, maxdisk = guest.maxmem(), guest_disk_size(guest)
    running = guest.status == "running"
    cpu = usage["cpu"] if running else 0.0
    mem = usage["mem"] if running else 0
    fields = {"cpu": (cpu, cpu * 0.4), "maxcpu": (guest.maxcpu(), 0), "mem": (mem, mem * 0.05),
              "maxmem": (maxmem, 0), "disk": (int(maxdisk * 0.35) if guest.type == "lxc" and running else 0, 0),
              "maxdisk": (maxdisk, 0), "netin": (180_000.0 if running else 0, 120_000.0 if running else 0),
              "netout": (90_000.0 if running else 0, 60_000.0 if running else 0),
              "diskread": (400_000.0 if running else 0, 300_000.0 if running else 0),
              "diskwrite": (250_000.0 if running else 0, 200_000.0 if running else 0)}
    if guest.type == "qemu":
        fields["memhost"] = fields["mem"]
    return rrd_series(guest.vmid, timeframe, fields)


# ---- tasks and lifecycle ---------------------------------------------------------------------

def task_type(guest: Guest, action: str) -> str:
    return TASK_TYPES[guest.type][action]


def still_exists(cluster: Cluster, guest: Guest) -> None:
    if cluster.guests.get(guest.vmid) is not guest:
        folder = "qemu-server" if guest.type == "qemu" else "lxc"
        raise TaskError(f"Configuration file 'nodes/{guest.node}/{folder}/{guest.vmid}.conf' does not exist")


def guest_task(cluster: Cluster, guest: Guest, user: str, type_: str, worker: Callable, *,
               lock: str | None = None, lock_in_task: bool = False, skiplock: bool = False,
               node: str | None = None, task_id: str | int | None = None) -> str:
    """Run `worker(t)` as a task for this guest.

    lock given, lock_in_task False: the lock is checked and set now (sync ApiError when locked);
    lock_in_task True: checked and set at the start of the task (a task error when locked).
    The lock is always released when the worker ends (unless the worker already changed it).
    """
    if lock and not lock_in_task:
        lock_guest(cluster, guest, lock, skiplock)

    def run(t):
        held = bool(lock) and not lock_in_task
        try:
            if lock and lock_in_task:
                t.checkpoint()
                with cluster.lock:
                    still_exists(cluster, guest)
                    if guest.lock and not skiplock:
                        raise TaskError(locked_message(guest))
                    guest.config["lock"] = lock
                    held = True
            worker(t)
        finally:
            if held:
                unlock_guest(cluster, guest, lock)

    return cluster.tasks.start(node=node or guest.node, type=type_, id=task_id if task_id is not None else guest.vmid,
                               user=user, worker=run)


def _ha_request(cluster: Cluster, guest: Guest, user: str, state: str) -> str:
    action = "start" if state == "started" else "stop"
    sid = ha_sid(guest)

    def worker(t):
        t.sleep(DURATION["ha"])
        t.log(f"Requesting HA {action} for {kind(guest)} {guest.vmid}")
        try:
            cluster.ha.request_state(sid, state)
        except ApiError as exc:
            raise TaskError(exc.message) from None

    return cluster.tasks.start(node=guest.node, type=f"ha{action}", id=guest.vmid, user=user, worker=worker)


def _use_ha(cluster: Cluster, guest: Guest, via_ha: bool) -> bool:
    return via_ha and ha_managed(cluster, guest) and callable(getattr(cluster.ha, "request_state", None))


def start_guest(cluster: Cluster, guest: Guest, user: str, *, skiplock: bool = False, via_ha: bool = True,
                seconds: float | None = None, log_lines: list[str] | None = None) -> str:
    """Start a guest in a task (qmstart/vzstart); HA-managed guests get a `hastart` request instead.

    Task errors: template, locked, already running (VMs), start hooks refusing (GPU in use ...).
    """
    if _use_ha(cluster, guest, via_ha):
        return _ha_request(cluster, guest, user, "started")

    def worker(t):
        t.checkpoint()
        with cluster.lock:
            _start_checks(cluster, guest, skiplock)
        for line in log_lines or []:
            t.log(line)
        t.sleep(DURATION["start"] if seconds is None else seconds)
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
        raise TaskError(f"{kind(guest)} {guest.vmid} already running")
    if not cluster.nodes[guest.node].online:
        raise TaskError("node is offline")


def stop_guest(cluster: Cluster, guest: Guest, user: str, *, skiplock: bool = False, via_ha: bool = True,
               seconds: float | None = None) -> str:
    """Hard-stop a guest in a task (qmstop/vzstop); HA-managed guests get a `hastop` request instead.

    Stopping a stopped VM is a no-op (as in PVE); a locked guest is a task error.
    """
    if _use_ha(cluster, guest, via_ha):
        return _ha_request(cluster, guest, user, "stopped")

    def worker(t):
        t.checkpoint()
        with cluster.lock:
            still_exists(cluster, guest)
            if guest.lock and not skiplock:
                raise TaskError(locked_message(guest))
        t.sleep(DURATION["stop"] if seconds is None else seconds)
        with cluster.lock:
            if guest.status == "running":
                cluster.guest_stopped(guest)

    return cluster.tasks.start(node=guest.node, type=task_type(guest, "stop"), id=guest.vmid, user=user, worker=worker)


def shutdown_guest(cluster: Cluster, guest: Guest, user: str, *, timeout: int | None = None,
                   force_stop: bool = False, skiplock: bool = False, via_ha: bool = True) -> str:
    """Clean shutdown in a task (qmshutdown/vzshutdown). A guest with `acpi: 0` ignores the request:
    after `timeout` the task fails `VM quit/powerdown failed - got timeout`, or stops it with forceStop."""
    if _use_ha(cluster, guest, via_ha):
        return _ha_request(cluster, guest, user, "stopped")
    if timeout is None:
        timeout = 180 if guest.type == "qemu" else 60

    def worker(t):
        t.checkpoint()
        with cluster.lock:
            still_exists(cluster, guest)
            if guest.lock and not skiplock:
                raise TaskError(locked_message(guest))
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


# ---- pools, HA, jobs on create/destroy -------------------------------------------------------------

def check_pool(cluster: Cluster, pool: str | None) -> None:
    if pool and pool not in cluster.pools:
        raise ApiError(500, f"pool '{pool}' does not exist")


def add_to_pool(cluster: Cluster, vmid: int, pool: str | None) -> None:
    if pool and pool in cluster.pools:
        for other in cluster.pools.values():
            other["vms"].discard(vmid)
        cluster.pools[pool]["vms"].add(vmid)


def ha_configured(cluster: Cluster, guest: Guest) -> bool:
    """An HA resource exists for the guest, in any state (also `ignored`): what destroy checks."""
    resources = getattr(cluster.ha, "resources", None) if cluster.ha is not None else None
    if isinstance(resources, dict):
        return ha_sid(guest) in resources
    return ha_managed(cluster, guest)


def ha_add(cluster: Cluster, guest: Guest, state: str) -> None:
    """`ha-managed=1` on create: add the HA resource (a task error if the HA manager refuses)."""
    fn = getattr(cluster.ha, "add_resource", None) if cluster.ha is not None else None
    if not callable(fn):
        return
    try:
        try:
            fn(ha_sid(guest), state=state)
        except TypeError:
            fn(ha_sid(guest))
    except ApiError as exc:
        raise TaskError(exc.message) from None


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
    log(f"purging {kind(guest)} {vmid} from related configurations..")
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
        for name in ("remove_resource", "delete_resource"):
            fn = getattr(cluster.ha, name, None)
            if callable(fn):
                fn(ha_sid(guest))
                log(f"NOTE: removed {kind(guest)} {vmid} from HA resource configuration.")
                break


def check_vm_allocate(ctx, vmid: int, pool: str | None) -> None:
    """VM.Allocate on /vms/{vmid}, or on /pool/{pool} when a pool is given."""
    if pool and ctx.has(f"/pool/{pool}", "VM.Allocate"):
        return
    ctx.check(f"/vms/{vmid}", "VM.Allocate")


def new_guest(cluster: Cluster, *, vmid: int, type_: str, node: str, config: dict) -> Guest:
    """Register a new guest (caller holds cluster.lock and has checked the vmid is free)."""
    guest = Guest(vmid=vmid, type=type_, node=node, config=config)
    cluster.guests[vmid] = guest
    return guest


def check_vmid_free(cluster: Cluster, vmid: int, type_: str) -> None:
    existing = cluster.guests.get(vmid)
    if existing is not None:
        raise ApiError(500, f"unable to create {'VM' if type_ == 'qemu' else 'CT'} {vmid} - "
                            f"{kind(existing)} {vmid} already exists on node '{existing.node}'")


def smbios_uuid() -> str:
    return f"uuid={uuid.uuid4()}"


def meta_line() -> str:
    return f"creation-qemu=10.1.2,ctime={int(time.time())}"


def decode_sshkeys(value: str) -> str:
    return unquote(value)


# ---- shared operations behind the qemu and lxc routes ------------------------------------------
# Each takes the request context and the guest, does PVE's sync checks, and returns a UPID (or None).

def storage_supports(cluster: Cluster, volid: str, feature: str, is_base: bool = False) -> bool:
    """PVE's volume_has_feature, reduced: snapshots/linked clones need a snapshot-capable storage."""
    st = cluster.storages.get(volid.split(":", 1)[0])
    if st is None:
        return False
    if feature == "copy":
        return True
    capable = st.type in ("rbd", "zfspool", "zfs", "lvmthin", "btrfs") or (st.is_file_based and volid.endswith(".qcow2"))
    if feature == "snapshot":
        return capable
    if feature == "clone":
        return capable and (is_base or "/base-" in volid or ":base-" in volid or ":basevol-" in volid)
    return False


def update_config(ctx, guest: Guest, p: dict, *, log: Callable[[str], None] | None = None,
                  in_task: bool = False) -> None:
    """Apply a config PUT/POST: `delete=` first (disks become unusedN, unusedN are destroyed), then
    the new values (new `STORAGE:SIZE` disks allocated at once). Changes to running guests apply
    immediately: pvesim keeps no pending section. Sync checks raise ApiError before anything changes."""
    cluster: Cluster = ctx.cluster
    values = cdrom_alias({k: v for k, v in p.items() if k not in CONFIG_CONTROL_PARAMS})
    deletes = [d for d in re.split(r"[,;\s]+", str(p.get("delete") or "")) if d]
    errors = {}
    for key in deletes:
        if key in values:
            errors["delete"] = f"you can't use '-{key}' and -delete {key}' at the same time"
        if guest.type == "lxc" and key == "rootfs":
            errors["delete"] = "unable to delete required option 'rootfs'"
    if errors:
        raise ApiError(400, "Parameter verification failed.", errors)
    check_config_perms(ctx, guest, values, deletes)
    check_disk_storages(ctx, guest.node, guest.type, {k: v for k, v in values.items()
                                                      if is_disk_key(k) or k.startswith("mp")})
    with cluster.lock:
        still = cluster.guests.get(guest.vmid)
        if still is not guest:
            raise ApiError(500, f"Configuration file '{guest.conf_path}' does not exist")
        assert_digest(guest, p.get("digest"))
        skiplock = bool(p.get("skiplock"))
        if not (in_task and guest.lock == "config"):
            check_lock(guest, skiplock)
        to_destroy: list[str] = []
        for key in deletes:
            if key not in guest.config:
                continue  # PVE only warns about options that are not set
            value = str(guest.config.pop(key))
            volid = disk_volid(key, value) if (is_disk_key(key) or key.startswith("mp")) else None
            if volid is None or (is_cdrom(value) and "cloudinit" not in value):
                continue
            if key.startswith("unused") or p.get("force") or "cloudinit" in value:
                to_destroy.append(volid)
            else:
                guest.config[next_unused_key(guest.config)] = volid
        for key, value in values.items():
            text = str(value)
            if re.fullmatch(r"net\d+", key):
                value = with_mac(cluster, guest.type, text)
            elif is_disk_key(key) or key.startswith("mp"):
                old = guest.config.get(key)
                old_vol = disk_volid(key, str(old)) if old is not None else None
                new_vol = disk_volid(key, text)
                if new_vol and not is_cdrom(text):
                    vol = cluster.find_volume(new_vol, guest.node)
                    if vol is not None:
                        value = _replace_file(text, new_vol, vol.size, drop=())
                if old_vol and old_vol != new_vol and not (is_cdrom(str(old)) and "cloudinit" not in str(old)):
                    guest.config[next_unused_key(guest.config)] = old_vol
                if new_vol and key.startswith("unused"):
                    value = new_vol
            guest.config[key] = value
        try:
            allocate_disks(cluster, guest=guest, keys=[k for k in values if is_disk_key(k) or k.startswith("mp")],
                           log=log)
        except TaskError as exc:
            if in_task:
                raise
            raise ApiError(500, str(exc)) from None
        for volid in to_destroy:
            cluster.remove_volume(volid, guest.node)
        if "name" in values or "hostname" in values:
            cluster.log_event(guest.node, ctx.authid, f"update {kind(guest)} {guest.vmid}: rename")


def cdrom_alias(values: dict) -> dict:
    """qemu's `cdrom=<iso>` is a shortcut for `ide2=<iso>,media=cdrom`."""
    if "cdrom" in values:
        value = str(values.pop("cdrom"))
        values["ide2"] = value if "media=cdrom" in value else f"{value},media=cdrom"
    return values


CONFIG_CONTROL_PARAMS = {"node", "vmid", "delete", "digest", "revert", "skiplock", "force", "background_delay",
                         "import-working-storage"}


def check_config_perms(ctx, guest_or_vmid, values: dict, deletes: list[str] = ()) -> None:
    """The privileges a config change needs (qemu-server check_vm_modify_config_perm, reduced)."""
    vmid = guest_or_vmid.vmid if isinstance(guest_or_vmid, Guest) else int(guest_or_vmid)
    path = f"/vms/{vmid}"
    for key in list(values) + list(deletes):
        if re.fullmatch(r"hostpci\d+", key):
            value = str(values.get(key, ""))
            if value:
                dev = HOSTPCI.parse(value)
                if "host" in dev:
                    if not ctx.is_root:
                        raise ApiError(500, f"only root can set '{key}' config for non-mapped devices")
                else:
                    ctx.check(f"/mapping/pci/{dev['mapping']}", "Mapping.Use")
                if dev.get("romfile") and not ctx.is_root:
                    raise ApiError(500, f"only root can set '{key}' config for romfile")
            ctx.check(path, "VM.Config.HWType")
        elif is_disk_key(key) or key.startswith("mp"):
            if is_cdrom(values.get(key, "")):
                ctx.check(path, "VM.Config.CDROM")
            else:
                ctx.check(path, "VM.Config.Disk")
        elif re.fullmatch(r"net\d+", key):
            ctx.check(path, "VM.Config.Network")
        elif key in ("memory", "balloon", "shares", "swap"):
            ctx.check(path, "VM.Config.Memory")
        elif key in ("cores", "sockets", "cpu", "vcpus", "cpulimit", "cpuunits", "affinity", "numa"):
            ctx.check(path, "VM.Config.CPU")
        elif key in ("ciuser", "cipassword", "citype", "sshkeys", "nameserver", "searchdomain", "cicustom",
                     "ciupgrade") or key.startswith("ipconfig"):
            ctx.check(path, "VM.Config.Cloudinit")
        elif key in ("lock",):
            if not ctx.is_root:
                raise ApiError(500, "only root can change lock")
        else:
            ctx.check(path, "VM.Config.Options")


def destroy(ctx, guest: Guest, p: dict) -> str:
    """DELETE guest -> qmdestroy/vzdestroy (sync: protection, HA without purge, running)."""
    cluster: Cluster = ctx.cluster
    vmid = guest.vmid
    ctx.check(f"/vms/{vmid}", "VM.Allocate")
    skiplock = check_skiplock(ctx, p)
    purge = bool(p.get("purge"))
    with cluster.lock:
        if str(guest.config.get("protection", "0")) == "1":
            raise ApiError(500, f"can't remove {kind(guest)} {vmid} - protection mode enabled")
        if guest.type == "lxc":
            check_lock(guest, skiplock)
        if ha_configured(cluster, guest) and not purge:
            raise ApiError(500, f"unable to remove {kind(guest)} {vmid} - used in HA resources and purge parameter not set.")
        if guest.status == "running":
            if guest.type == "qemu":
                raise ApiError(500, f"VM {vmid} is running - destroy failed")
            if not p.get("force"):
                raise ApiError(500, f"unable to destroy CT {vmid} - container is running")
    unreferenced = bool(p.get("destroy-unreferenced-disks", 1 if guest.type == "lxc" else 0))

    def worker(t):
        t.checkpoint()
        with cluster.lock:
            still_exists(cluster, guest)
            if guest.lock and not skiplock:
                raise TaskError(locked_message(guest))
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
            cluster.log_event(guest.node, ctx.authid, f"destroy {kind(guest)} {vmid}")

    return cluster.tasks.start(node=guest.node, type=task_type(guest, "destroy"), id=vmid, user=ctx.authid, worker=worker)


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
            raise ApiError(500, f"unable to create {kind(guest)} {newid}: config file already exists")
        check_lock(guest)
        snapname = p.get("snapname")
        if snapname and snapname not in guest.snapshots:
            raise ApiError(500, f"snapshot '{snapname}' does not exist")
        if guest.type == "lxc" and guest.status == "running" and not snapname:
            pass  # PVE clones running CTs via a temporary snapshot
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
            raise ApiError(500, f"can't clone {'VM' if guest.type == 'qemu' else 'CT'} to node '{target}' "
                                f"({'VM' if guest.type == 'qemu' else 'CT'} uses local storage)")
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
                    clone_guest.config[key] = _replace_file(value, vol.volid, None if cloudinit else size,
                                                            drop=("import-from",))
            t.sleep(0.5)
            with cluster.lock:
                still_exists(cluster, clone_guest)
                clone_guest.config.pop("lock", None)
                add_to_pool(cluster, newid, pool)
                cluster.log_event(guest.node, ctx.authid, f"clone {kind(guest)} {guest.vmid} to {newid}")
        except BaseException:
            with cluster.lock:
                for volid in created:
                    cluster.remove_volume(volid, new_node)
                if cluster.guests.get(newid) is clone_guest:
                    del cluster.guests[newid]
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
        what = "VM" if guest.type == "qemu" else "CT"
        if guest.snapshots:
            raise ApiError(500, f"unable to create template, because {what} contains snapshots")
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
            still_exists(cluster, guest)
            if guest.lock and not skiplock:
                raise TaskError(locked_message(guest))
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
            guest.config[disk] = _replace_file(str(guest.config[disk]), volid, new, drop=())
            cluster.log_event(guest.node, ctx.authid, f"update {kind(guest)} {guest.vmid}: resize --disk {disk} --size {size_text}")
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
                guest.config[disk] = _replace_file(str(guest.config[disk]), new.volid, src.size, drop=())
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


# ---- snapshots ---------------------------------------------------------------------------------

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
    from ..state import Snapshot
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
            cluster.log_event(guest.node, ctx.authid, f"snapshot {kind(guest)} {guest.vmid}: {name}")

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
                try:
                    cluster.guest_started(guest)
                except TaskError:
                    raise
            cluster.log_event(guest.node, ctx.authid, f"rollback {kind(guest)} {guest.vmid}: {name}")

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
            cluster.log_event(guest.node, ctx.authid, f"delete snapshot {kind(guest)} {guest.vmid}: {name}")

    # `force` removes the snapshot from the config even if a volume cannot be deleted; with the
    # lock taken in the task, a stale snapshot-delete lock is overridden by force as in PVE.
    return guest_task(cluster, guest, ctx.authid, task_type(guest, "delsnapshot"), worker, lock="snapshot-delete",
                      lock_in_task=True, skiplock=force and guest.lock == "snapshot-delete")


def snapshot_get(guest: Guest, name: str):
    snap = guest.snapshots.get(name)
    if snap is None:
        raise ApiError(500, f"snapshot '{name}' does not exist")
    return snap


def feature(cluster: Cluster, guest: Guest, feature_name: str, snapname: str | None) -> dict:
    """GET .../feature: can the guest's volumes do snapshot/clone/copy, and on which nodes."""
    if snapname:
        snapshot_get(guest, snapname)
    volids = [v for k, v in guest_volumes(guest, include_snapshots=False) if k != "vmstate"]
    ok = all(storage_supports(cluster, v, feature_name, guest.is_template) for v in volids)
    nodes = [n for n in cluster.nodes if all(cluster.storages[v.split(":", 1)[0]].shared or n == guest.node
                                             for v in volids if v.split(":", 1)[0] in cluster.storages)]
    return {"hasFeature": 1 if ok else 0, "nodes": nodes}


def rrd_params() -> dict:
    return {"node": P.node(), "vmid": P.vmid(), "timeframe": P.enum(["hour", "day", "week", "month", "year"], optional=False),
            "cf": P.enum(["AVERAGE", "MAX"])}


def restore_hook():
    """pvesim.api.backup.restore_guest(ctx, p, type_) -> upid, when the backup module provides it."""
    try:
        from . import backup
    except ImportError:  # pragma: no cover - the module always exists in the package
        return None
    fn = getattr(backup, "restore_guest", None)
    return fn if callable(fn) else None
