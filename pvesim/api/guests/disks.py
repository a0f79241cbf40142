"""Guest disks and volumes: `STORAGE:SIZE` specs, allocation, the volumes a config references,
copy progress lines, and what a storage supports (snapshots, linked clones)."""

from __future__ import annotations

import re
from typing import Callable

from ...errors import ApiError, TaskError
from ...params import parse_props
from ...scenario import format_size, is_disk_key
from ...state import GiB, MiB, Cluster, Guest, Volume


NEW_DISK_RE = re.compile(r"^([a-z][a-z0-9\-_.]*[a-z0-9]):(\d+(?:\.\d+)?)$")


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


def replace_file(value: str, volid: str, size: int | None, drop: tuple[str, ...] = ("import-from",),
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
                guest.config[key] = replace_file(value, vol.volid, None) + ("" if "media=cdrom" in value else ",media=cdrom")
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
            guest.config[key] = replace_file(value, vol.volid, size)
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
    return f"{value:.1f} {units[i]}"


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
