"""Limits, defaults and the field checks shared by the VM and container plans."""

from __future__ import annotations

import ipaddress
import re

from cryptography.hazmat.primitives.serialization import load_ssh_public_key


GiB = 1024**3
MiB = 1024**2

# Limits checked before anything reaches Proxmox (Proxmox's own minimums are lower: 16 MiB).
LIMITS = {
    "cores": (1, 128), "memory_vm": (64, 4 * 1024 * 1024), "memory_ct": (32, 4 * 1024 * 1024),
    "swap": (0, 1024 * 1024), "disk_size": (1, 65536), "vlan": (1, 4094),
}
VM_OSTYPES = [("l26", "Linux 6.x / 5.x"), ("win11", "Windows 11 / 2022 / 2025"), ("win10", "Windows 10 / 2016 / 2019"),
              ("other", "Other")]
DNS_NAME = re.compile(r"^(?=.{1,253}$)[a-zA-Z0-9]([a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?"
                      r"(\.[a-zA-Z0-9]([a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?)*$")
BRIDGE = re.compile(r"^[A-Za-z][A-Za-z0-9_.-]{0,14}$")  # a Linux interface name (max 15 chars)
TAG = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_+.-]*$")  # pve-tag
POOL = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_-]{0,63}$")  # pve-poolid
CI_USER = re.compile(r"^[a-z_][a-z0-9_-]{0,31}$")
PASSWORD_MIN = 8
# Bounds checked before anything is queued (Proxmox sets none for these, its config files stay small).
PASSWORD_MAX = 256
MAX_TAGS, TAG_MAX_LENGTH = 32, 64
SSH_KEYS_MAX_BYTES, SSH_KEYS_MAX_COUNT = 16 * 1024, 32
DEFAULTS = {
    "source": "iso", "clone": "linked", "cores": 2, "memory": 2048, "disk_size": 32, "bridge": "vmbr0",
    "firewall": True, "ostype": "l26", "ip_mode": "dhcp", "unprivileged": True, "nesting": False, "swap": 512,
    "start": False, "node": "", "tags": "", "pool": "",
}
CT_DEFAULTS = {**DEFAULTS, "cores": 1, "memory": 1024, "disk_size": 8}


class FieldErrors(dict):
    def add(self, field: str, message: str) -> None:
        self.setdefault(field, []).append(message)


def size_label(size_bytes: int) -> str:
    return f"{size_bytes / GiB:,.0f} GiB" if size_bytes >= GiB else f"{size_bytes / MiB:,.0f} MiB"


def check_range(errors: FieldErrors, data: dict, field: str, limits: tuple[int, int], unit: str = "") -> int | None:
    value = data.get(field)
    if value in (None, ""):
        errors.add(field, "this field is required")
        return None
    low, high = limits
    if not (low <= int(value) <= high):
        errors.add(field, f"must be between {low:,} and {high:,}{unit}")
        return None
    return int(value)


def parse_ssh_keys(text: str) -> tuple[list[str], list[str]]:
    """One OpenSSH public key per line -> (keys, problems); parsed with `cryptography`."""
    keys, problems = [], []
    if len((text or "").encode()) > SSH_KEYS_MAX_BYTES:
        return [], [f"at most {SSH_KEYS_MAX_BYTES // 1024} KiB of keys"]
    for number, line in enumerate((text or "").splitlines(), start=1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        try:
            load_ssh_public_key(line.encode())
        except (ValueError, TypeError) as exc:
            problems.append(f"line {number}: not an OpenSSH public key ({exc})")
            continue
        except Exception as exc:  # unsupported key types raise UnsupportedAlgorithm
            problems.append(f"line {number}: unsupported key ({exc})")
            continue
        keys.append(line)
    if len(keys) > SSH_KEYS_MAX_COUNT:
        problems.append(f"at most {SSH_KEYS_MAX_COUNT} keys, got {len(keys)}")
    return keys, problems


def tag_problems(tags: list[str]) -> list[str]:
    """Count and length bounds of a tag list (each tag's characters are checked by the caller)."""
    if len(tags) > MAX_TAGS:
        return [f"at most {MAX_TAGS} tags, got {len(tags)}"]
    return [f"'{tag[:20]}…' is longer than {TAG_MAX_LENGTH} characters" for tag in tags if len(tag) > TAG_MAX_LENGTH]


def parse_tags(value) -> list[str]:
    if isinstance(value, (list, tuple)):
        items = [str(v) for v in value]
    else:
        items = re.split(r"[;,\s]+", value or "")
    return [t.strip() for t in items if t and t.strip()]


def network_checks(errors: FieldErrors, data: dict) -> dict:
    """Bridge/VLAN and the IPv4 settings: {"ip": "dhcp"|"10.0.0.5/24", "gw": str|None, ...}."""
    out = {"bridge": (data.get("bridge") or "").strip(), "vlan": data.get("vlan"), "firewall": bool(data.get("firewall"))}
    if not BRIDGE.match(out["bridge"]):
        errors.add("bridge", "must be a Linux bridge name such as vmbr0 (letters, digits, . _ -; at most 15)")
    if out["vlan"] not in (None, ""):
        out["vlan"] = check_range(errors, data, "vlan", LIMITS["vlan"])
    else:
        out["vlan"] = None
    mode = data.get("ip_mode") or "dhcp"
    out["ip"], out["gw"] = "dhcp", None
    if mode not in ("dhcp", "static"):
        errors.add("ip_mode", "must be dhcp or static")
    elif mode == "static":
        text = (data.get("ip") or "").strip()
        try:
            iface = ipaddress.IPv4Interface(text)
            if "/" not in text:
                raise ValueError("prefix missing")
        except ValueError:
            errors.add("ip", f"'{text}' is not an IPv4 address with prefix length, e.g. 192.168.1.20/24")
            iface = None
        if iface is not None:
            net = iface.network
            if net.prefixlen < 31 and iface.ip in (net.network_address, net.broadcast_address):
                errors.add("ip", f"{iface.ip} is the network or broadcast address of {net}")
            else:
                out["ip"] = str(iface)
        gw_text = (data.get("gateway") or "").strip()
        if gw_text:
            try:
                gw = ipaddress.IPv4Address(gw_text)
            except ValueError:
                errors.add("gateway", f"'{gw_text}' is not an IPv4 address")
            else:
                if iface is not None and gw not in iface.network:
                    errors.add("gateway", f"{gw} is not in the subnet {iface.network}")
                elif iface is not None and gw == iface.ip:
                    errors.add("gateway", "must differ from the guest's own address")
                else:
                    out["gw"] = str(gw)
    servers = [s for s in re.split(r"[\s,;]+", data.get("nameservers") or "") if s]
    for server in servers:
        try:
            ipaddress.ip_address(server)
        except ValueError:
            errors.add("nameservers", f"'{server}' is not an IP address")
    out["nameservers"] = " ".join(servers)
    domain = (data.get("searchdomain") or "").strip()
    if domain and not DNS_NAME.match(domain):
        errors.add("searchdomain", f"'{domain}' is not a valid DNS domain")
    out["searchdomain"] = domain
    return out


def storage_on_node(rows, node) -> object | None:
    """The Storage row through which `node` sees this storage (local row of the node, or shared)."""
    for row in rows:
        if row.node_id == node.pk or (row.node_id is None and node.name in (row.nodes or [])):
            return row
    return None


def free_bytes(row) -> int | None:
    return max(0, row.maxdisk - row.disk) if row is not None and row.maxdisk else None
