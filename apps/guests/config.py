"""Read a guest's Proxmox config (as cached on Guest.config) into disks and network interfaces."""

from __future__ import annotations

import re

from apps.core.units import MIB, binary_size

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
                     "size_h": binary_size(size_bytes(props["size"])) if props.get("size") else "",
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


_SIZE_UNITS = {"": 1, "K": 1024, "M": MIB, "G": 1024**3, "T": 1024**4}


def size_bytes(size: str) -> int | None:
    """Proxmox's disk size ('32G', '512M', '1.5T', bytes without unit) in bytes; None if unreadable."""
    match = re.fullmatch(r"(\d+(?:\.\d+)?)([KMGT]?)", str(size or "").strip())
    return int(float(match.group(1)) * _SIZE_UNITS[match.group(2)]) if match else None


# Keys shown in the summary, in this order, when present, with the label a person reads.
SUMMARY_LABELS = {
    "name": "Name", "hostname": "Hostname", "description": "Description", "ostype": "OS type",
    "cores": "CPU cores", "sockets": "CPU sockets", "cpu": "CPU type", "memory": "Memory",
    "balloon": "Minimum memory (ballooning)", "swap": "Swap", "bios": "Firmware", "machine": "Machine type",
    "scsihw": "SCSI controller", "boot": "Boot order", "agent": "QEMU guest agent", "onboot": "Start at boot",
    "protection": "Protected from removal", "unprivileged": "Unprivileged container", "features": "Features",
    "tags": "Tags",
}
SUMMARY_KEYS = list(SUMMARY_LABELS)
# Proxmox's own descriptions (API schema of qemu/lxc config `ostype`).
OS_TYPES = {
    "other": "Other", "wxp": "Microsoft Windows XP", "w2k": "Microsoft Windows 2000",
    "w2k3": "Microsoft Windows 2003", "w2k8": "Microsoft Windows 2008", "wvista": "Microsoft Windows Vista",
    "win7": "Microsoft Windows 7", "win8": "Microsoft Windows 8/2012/2012r2",
    "win10": "Microsoft Windows 10/2016/2019", "win11": "Microsoft Windows 11/2022/2025",
    "l24": "Linux 2.4 kernel", "l26": "Linux 2.6+ kernel", "solaris": "Solaris kernel",
    "debian": "Debian", "ubuntu": "Ubuntu", "centos": "CentOS", "fedora": "Fedora", "opensuse": "openSUSE",
    "archlinux": "Arch Linux", "alpine": "Alpine Linux", "gentoo": "Gentoo", "nixos": "NixOS",
    "devuan": "Devuan", "unmanaged": "Unmanaged",
}
SCSI_CONTROLLERS = {
    "lsi": "LSI 53C895A", "lsi53c810": "LSI 53C810", "virtio-scsi-pci": "VirtIO SCSI",
    "virtio-scsi-single": "VirtIO SCSI single", "megasas": "MegaRAID SAS 8708EM2", "pvscsi": "VMware PVSCSI",
}
FIRMWARE = {"seabios": "SeaBIOS (legacy BIOS)", "ovmf": "OVMF (UEFI)"}
_YES_NO_KEYS = {"onboot", "protection", "unprivileged"}


def _yes_no(value) -> str:
    return "yes" if str(value).strip() in {"1", "true", "yes", "on"} else "no"


def _summary_value(key: str, value) -> str:
    text = str(value)
    if key == "ostype":
        return OS_TYPES.get(text, text)
    if key in {"memory", "swap"}:  # MiB in Proxmox's config
        return binary_size(int(value) * MIB) if text.isdigit() else text
    if key == "balloon":
        return "off" if text == "0" else binary_size(int(value) * MIB) if text.isdigit() else text
    if key in _YES_NO_KEYS:
        return _yes_no(text)
    if key == "agent":  # "1" or "enabled=1,fstrim_cloned_disks=1"
        props = parse_property_string(text, "enabled")
        return "on" if props.get("enabled") in {"1", "true"} else "off"
    if key == "scsihw":
        return SCSI_CONTROLLERS.get(text, text)
    if key == "bios":
        return FIRMWARE.get(text, text)
    if key == "boot":  # "order=scsi0;ide2;net0"
        order = parse_property_string(text, "legacy").get("order")
        return ", ".join(order.split(";")) if order else text
    if key == "features":  # "nesting=1,keyctl=1"
        props = parse_property_string(text, "")
        on = [k for k, v in props.items() if k and v not in {"0", ""}]
        return ", ".join(on) or "none"
    return text


def summary(config: dict) -> list[tuple[str, str]]:
    """(label, value) pairs written for a person: 'OS type: Linux 2.6+ kernel', 'Memory: 8.0 GiB'."""
    return [(SUMMARY_LABELS[k], _summary_value(k, config[k])) for k in SUMMARY_KEYS if k in config]
