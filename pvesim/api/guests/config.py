"""Guest config: GET payloads, the shared PUT/POST config body with its privilege checks, NIC MACs."""

from __future__ import annotations

import random
import re
from typing import Callable

from ...errors import ApiError, TaskError
from ...params import parse_props
from ...scenario import is_disk_key
from ...state import Cluster, Guest
from .base import assert_digest, check_lock
from .disks import allocate_disks, check_disk_storages, disk_volid, is_cdrom, next_unused_key, replace_file
from .schema import HOSTPCI, LXC_DEV, QEMU_NET, QEMU_NET_MODELS


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
                        value = replace_file(text, new_vol, vol.size, drop=())
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
            cluster.log_event(guest.node, ctx.authid, f"update {guest.kind} {guest.vmid}: rename")


def cdrom_alias(values: dict) -> dict:
    """qemu's `cdrom=<iso>` is a shortcut for `ide2=<iso>,media=cdrom`."""
    if "cdrom" in values:
        value = str(values.pop("cdrom"))
        values["ide2"] = value if "media=cdrom" in value else f"{value},media=cdrom"
    return values


CONFIG_CONTROL_PARAMS = {"node", "vmid", "delete", "digest", "revert", "skiplock", "force", "background_delay",
                         "import-working-storage"}


def verify_lxc_dev(key: str, value: str) -> None:
    """pve-lxc-dev-string: under /dev/, without `.` or `..` components (400 like Proxmox)."""
    path = LXC_DEV.parse(value).get("path", "")
    if re.search(r"/\.\.?(?:/|$)", path) or not path.startswith("/dev/"):
        raise ApiError(400, "Parameter verification failed.", {key: f"invalid format - {path} is not a valid device path"})


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
        elif re.fullmatch(r"dev\d+", key):
            if values.get(key):
                verify_lxc_dev(key, str(values[key]))
            # pve-container check_ct_modify_config_perm: no privilege grants it, tokens included
            if not ctx.is_root:
                raise ApiError(403, "Permission check failed (configuring device passthrough is only allowed "
                                    "for root@pam)")
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
