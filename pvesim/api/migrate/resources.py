"""What a guest uses: its volumes, local and mapped resources, local disks, HA resource id."""

from __future__ import annotations

import re

from ...params import parse_props
from ...scenario import is_disk_key, parse_size
from ...state import Cluster, Guest, MiB


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
