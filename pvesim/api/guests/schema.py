"""Parameter declarations qemu.py and lxc.py share (names and types as in the official schema),
and the schema formats pvesim checks itself (registered in params.FORMATS on import)."""

from __future__ import annotations

import ipaddress
import re

from ...params import FORMATS, FormatError, P, Param, PropString


QEMU_DISK_BUSES = {"ide": 4, "sata": 6, "scsi": 31, "virtio": 16}


# ---- formats the schema names that pvesim checks itself ------------------------------------

def _check_size(value: str) -> None:
    if not re.fullmatch(r"\d+(\.\d+)?[KMGT]?", value):
        raise FormatError(f"unable to parse size '{value}'")


def _check_urlencoded(value: str) -> None:
    if not re.fullmatch(r"[%a-zA-Z0-9\-_.!~*'()]*", value):
        raise FormatError(f"invalid urlencoded string: {value}")


def _cidr_or(value: str, words: tuple[str, ...], version: int, what: str) -> None:
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
# dev[n] (pve-container LXC/Config.pm $dev_desc); the path's own check is verify_lxc_dev().
LXC_DEV = PropString({"path": P.string(), "mode": P.string(pattern=r"0[0-7]{3}"), "uid": P.integer(minimum=0),
                      "gid": P.integer(minimum=0), "deny-write": P.boolean()}, default_key="path")
LXC_FEATURES = PropString({"force_rw_sys": P.boolean(), "fuse": P.boolean(), "keyctl": P.boolean(),
                           "mknod": P.boolean(), "mount": P.string(pattern=r"[a-zA-Z0-9_; ]+"), "nesting": P.boolean()})


def disk_enum(type_: str) -> list[str]:
    """The `disk` enum of resize/move_disk/template (qemu) or resize/move_volume (lxc)."""
    if type_ == "lxc":
        return ["rootfs"] + [f"mp{i}" for i in range(256)]
    out = [f"{bus}{i}" for bus, n in QEMU_DISK_BUSES.items() for i in range(n)]
    return out + ["efidisk0", "tpmstate0"]


def rrd_params() -> dict:
    return {"node": P.node(), "vmid": P.vmid(), "timeframe": P.enum(["hour", "day", "week", "month", "year"], optional=False),
            "cf": P.enum(["AVERAGE", "MAX"])}
