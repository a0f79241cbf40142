"""Read a guest's Proxmox config (as cached on Guest.config) into disks and network interfaces."""

from __future__ import annotations

import re

_QEMU_DISK = re.compile(r"^(scsi|virtio|sata|ide|efidisk|tpmstate)\d+$")
_LXC_DISK = re.compile(r"^(rootfs|mp\d+)$")
_NET = re.compile(r"^net\d+$")
_NIC_MODELS = ("virtio", "e1000", "e1000e", "vmxnet3", "rtl8139", "ne2k_pci", "pcnet", "i82551")


def parse_property_string(value: str, default_key: str) -> dict[str, str]:
    """`local:vm-100-disk-0,size=32G` -> {default_key: 'local:vm-100-disk-0', 'size': '32G'}."""
    out: dict[str, str] = {}
    for i, part in enumerate(str(value).split(",")):
        key, sep, val = part.partition("=")
        if not sep:
            out[default_key if i == 0 else key] = key if i == 0 else ""
        else:
            out[key] = val
    return out


def _order(key: str) -> tuple:
    match = re.match(r"^([a-z]+)(\d*)$", key)
    return (match.group(1), int(match.group(2) or 0)) if match else (key, 0)


def disks(config: dict, guest_type: str) -> list[dict]:
    pattern = _QEMU_DISK if guest_type == "qemu" else _LXC_DISK
    rows = []
    for key in sorted((k for k in config if pattern.match(k)), key=_order):
        props = parse_property_string(config[key], "volume")
        if "file" in props and "volume" not in props:
            props["volume"] = props.pop("file")
        rows.append({"key": key, "volume": props.get("volume", ""), "size": props.get("size", ""),
                     "media": props.get("media", "disk"), "mountpoint": props.get("mp", "/" if key == "rootfs" else ""),
                     "options": {k: v for k, v in props.items() if k not in ("volume", "size", "media", "mp")}})
    return rows


def networks(config: dict, guest_type: str) -> list[dict]:
    rows = []
    for key in sorted((k for k in config if _NET.match(k)), key=_order):
        props = parse_property_string(config[key], "model")
        model = next((m for m in _NIC_MODELS if m in props), props.get("model", ""))
        mac = props.get(model) if model in props else props.get("hwaddr") or props.get("macaddr", "")
        rows.append({"key": key, "name": props.get("name", key), "model": model if guest_type == "qemu" else "veth",
                     "mac": mac or "", "bridge": props.get("bridge", ""), "vlan": props.get("tag", ""),
                     "ip": props.get("ip", ""), "firewall": props.get("firewall") == "1"})
    return rows


# Keys shown in the summary, in this order, when present.
SUMMARY_KEYS = ["name", "hostname", "description", "ostype", "cores", "sockets", "cpu", "memory", "balloon",
                "swap", "bios", "machine", "scsihw", "boot", "agent", "onboot", "protection", "unprivileged",
                "features", "tags"]


def summary(config: dict) -> list[tuple[str, str]]:
    return [(k, str(config[k])) for k in SUMMARY_KEYS if k in config]
