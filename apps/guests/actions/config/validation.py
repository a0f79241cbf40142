"""Reading a guest's cached config and planning a change: every field checked, nothing sent to Proxmox."""

from __future__ import annotations

import ipaddress
import math
import re
from dataclasses import dataclass, field
from urllib.parse import quote, unquote

from django.core.exceptions import ValidationError

from ... import config as guest_config
from ...choices import GuestType
from ...models import Guest
from ..create.validation import tag_problems


GiB = 1024**3
_UNITS = {"": 1, "K": 1024, "M": 1024**2, "G": GiB, "T": 1024**4}

# -- reading the config ----------------------------------------------------------------------------


def size_bytes(text: str) -> int:
    """PVE sizes: `32G`, `512M`, `1.5T`, plain bytes."""
    match = re.fullmatch(r"(\d+(?:\.\d+)?)([KMGT]?)", str(text or "").strip())
    return int(float(match.group(1)) * _UNITS[match.group(2)]) if match else 0


def resizable_disks(guest: Guest) -> list[dict]:
    """Disks that can grow: not CD-ROMs, cloud-init drives, EFI vars or TPM state."""
    rows = []
    for disk in guest_config.disks(guest.config or {}, guest.type):
        if disk["media"] == "cdrom" or "cloudinit" in disk["volume"] or disk["key"].startswith(("efidisk", "tpmstate")):
            continue
        disk["bytes"] = size_bytes(disk["size"])
        disk["gib"] = math.ceil(disk["bytes"] / GiB) if disk["bytes"] else 0
        rows.append(disk)
    return rows


def storages_for(guest: Guest) -> list[str]:
    """Storage ids on the guest's node that hold this guest type's volumes (images / rootdir)."""
    from apps.storage.models import Storage

    if guest.node_id is None:
        return []
    return sorted(set(Storage.objects.filter(
        cluster_id=guest.cluster_id, nodes__contains=[guest.node.name],
        content__contains=["images" if guest.type == GuestType.QEMU else "rootdir"]).values_list("storage", flat=True)))


def split_tags(value) -> list[str]:
    if isinstance(value, (list, tuple)):
        value = ";".join(str(v) for v in value)
    return [t for t in re.split(r"[;,\s]+", str(value or "")) if t]


def current_ipconfig(guest: Guest) -> tuple[str, str]:
    """(ip, gateway) as the form shows them: from ipconfig0 (VM) or net0's ip/gw (CT)."""
    config = guest.config or {}
    if guest.type == GuestType.QEMU:
        props = guest_config.parse_property_string(config.get("ipconfig0", ""), "ip") if config.get("ipconfig0") else {}
    else:
        props = guest_config.parse_property_string(config.get("net0", ""), "name") if config.get("net0") else {}
    return props.get("ip", ""), props.get("gw", "")


def set_props(value: str, updates: dict[str, str | None]) -> str:
    """Change keys of a property string in place (None removes one), keeping the others and their order."""
    parts, seen = [], set()
    for part in str(value).split(","):
        key, sep, _ = part.partition("=")
        if sep and key in updates:
            seen.add(key)
            if updates[key] is not None:
                parts.append(f"{key}={updates[key]}")
            continue
        parts.append(part)
    parts += [f"{k}={v}" for k, v in updates.items() if k not in seen and v is not None]
    return ",".join(p for p in parts if p)


# -- validation and the change plan ---------------------------------------------------------------

TAG_RE = re.compile(r"^[a-z0-9_][a-z0-9_\-+.]*$", re.IGNORECASE)
USER_RE = re.compile(r"^[a-z_][a-z0-9_-]{0,31}$")
BRIDGE_RE = re.compile(r"^[A-Za-z][A-Za-z0-9_.-]{0,14}$")
MOUNT_RE = re.compile(r"^/[^,\s]*$")
LIMITS = {"cores": (1, 512), "memory": (16, 4 * 1024 * 1024), "swap": (0, 4 * 1024 * 1024)}
MAX_DISK_GIB = 128 * 1024


def validate_ssh_keys(text: str) -> list[str]:
    """One OpenSSH public key per line; raises ValueError naming the bad line."""
    from cryptography.hazmat.primitives.serialization import load_ssh_public_key

    from ..create.validation import SSH_KEYS_MAX_BYTES, SSH_KEYS_MAX_COUNT

    if len(str(text).encode()) > SSH_KEYS_MAX_BYTES:
        raise ValueError(f"at most {SSH_KEYS_MAX_BYTES // 1024} KiB of keys")
    keys = [line.strip() for line in str(text).splitlines() if line.strip() and not line.strip().startswith("#")]
    if len(keys) > SSH_KEYS_MAX_COUNT:
        raise ValueError(f"at most {SSH_KEYS_MAX_COUNT} keys, got {len(keys)}")
    for n, key in enumerate(keys, 1):
        try:
            load_ssh_public_key(key.encode())
        except Exception:
            raise ValueError(f"line {n} is not an OpenSSH public key (expected e.g. 'ssh-ed25519 AAAA... "
                             f"user@host'): {key[:40]}") from None
    return keys


def _cidr(text: str) -> ipaddress.IPv4Interface:
    if "/" not in text:
        raise ValueError("give the address with its prefix length, e.g. 10.0.0.5/24, or 'dhcp'")
    try:
        return ipaddress.IPv4Interface(text)
    except ValueError:
        raise ValueError(f"'{text}' is not an IPv4 address with prefix length (e.g. 10.0.0.5/24)") from None


@dataclass
class ConfigPlan:
    params: dict = field(default_factory=dict)  # keys to set with the PUT
    delete: list[str] = field(default_factory=list)  # keys to clear with the PUT
    resizes: list[tuple[str, str]] = field(default_factory=list)  # (disk, "64G"): tasks, after the PUT
    summary: list[str] = field(default_factory=list)  # what the PUT changes, in words
    resize_summary: list[str] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.params or self.delete or self.resizes)


class _Planner:
    """Builds one ConfigPlan section by section; every problem is collected, keyed like the API field."""

    def __init__(self, guest: Guest, changes: dict):
        self.guest, self.changes = guest, changes
        self.config = dict(guest.config or {})
        self.qemu = guest.type == GuestType.QEMU
        self.plan, self.errors = ConfigPlan(), {}
        self.taken: set[str] = set()  # config keys given to new disks/cards in this plan

    def err(self, key: str, message: str) -> None:
        self.errors.setdefault(key, []).append(message)

    def put(self, key: str, value, words: str) -> None:
        self.plan.params[key] = value
        self.plan.summary.append(words)

    def set_or_clear(self, key: str, value, words: str) -> None:
        """An empty value clears the key (`delete=`), as Proxmox wants."""
        if value:
            self.put(key, value, f"{words} → {value}" if key not in ("description", "sshkeys") else f"{words} set")
        else:
            self.plan.delete.append(key)
            self.plan.summary.append(f"{words} cleared")

    def given(self, key: str) -> bool:
        return self.changes.get(key) is not None

    def general(self) -> None:
        config, changes = self.config, self.changes
        for key in ("cores", "memory", "swap"):
            if not self.given(key):
                continue
            if key == "swap" and self.qemu:
                self.err("swap", "VMs have no swap setting; only containers do")
                continue
            low, high = LIMITS[key]
            value = int(changes[key])
            if not low <= value <= high:
                unit = " MiB" if key != "cores" else ""
                self.err(key, f"must be between {low}{unit} and {high}{unit}")
            elif str(value) != str(config.get(key, "")).split("=")[-1]:
                self.put(key, value, f"{key} {config.get(key, '-')} → {value}")
        if self.given("description"):
            text = str(changes["description"])
            if len(text) > 8192:
                self.err("description", "may be at most 8192 characters")
            elif text.strip() != str(config.get("description", "")).strip():
                self.set_or_clear("description", text if text.strip() else "", "description")
        if self.given("tags"):
            tags = split_tags(changes["tags"])
            bad = [t for t in tags if not TAG_RE.match(t)]
            problems = tag_problems(tags)
            if problems:
                self.err("tags", problems[0])
            elif bad:
                self.err("tags", f"invalid tag '{bad[0]}': letters, digits and _ - + . only, not starting with - + .")
            elif sorted(tags) != sorted(split_tags(config.get("tags"))):
                self.set_or_clear("tags", ";".join(tags), "tags")
        for key, words in (("protection", "protection"), ("onboot", "start on boot")):
            if self.given(key) and bool(changes[key]) != (str(config.get(key, "0")) == "1"):
                self.put(key, 1 if changes[key] else 0, f"{words} {'on' if changes[key] else 'off'}")

    def cloud_init(self) -> None:
        """User and SSH keys (VMs); the IPv4 address: ipconfig0 for VMs, net0's ip/gw for containers."""
        config, changes = self.config, self.changes
        for key in ("ciuser", "sshkeys"):
            if self.given(key) and not self.qemu and str(changes[key]).strip():
                self.err(key, "containers have no cloud-init; set SSH keys and users inside the container")
        if self.qemu and self.given("ciuser"):
            user = str(changes["ciuser"]).strip()
            if user and not USER_RE.match(user):
                self.err("ciuser", "a user name: lowercase letters, digits, _ and -, starting with a letter or _ "
                                   "(max 32)")
            elif user != config.get("ciuser", ""):
                self.set_or_clear("ciuser", user, "cloud-init user")
        if self.qemu and self.given("sshkeys"):
            try:
                keys = validate_ssh_keys(changes["sshkeys"])
            except ValueError as exc:
                self.err("sshkeys", str(exc))
            else:
                current = [k.strip() for k in unquote(config.get("sshkeys", "")).splitlines() if k.strip()]
                if keys != current:
                    # PVE wants the keys URL-encoded (pve-semantics §3.2), one per line.
                    self.set_or_clear("sshkeys", quote("\n".join(keys) + "\n", safe="") if keys else "",
                                      f"SSH keys ({len(keys)})" if keys else "SSH keys")
        if self.given("ip") or self.given("gateway"):
            self._address()

    def _address(self) -> None:
        cur_ip, cur_gw = current_ipconfig(self.guest)
        ip = str(self.changes["ip"] if self.given("ip") else cur_ip).strip()
        gw = str(self.changes["gateway"] if self.given("gateway") else cur_gw).strip()
        net = None
        if ip and ip != "dhcp":
            try:
                net = _cidr(ip)
            except ValueError as exc:
                self.err("ip", str(exc))
        if gw and (not ip or ip == "dhcp"):
            self.err("gateway", "a gateway needs a static IP address")
        elif gw:
            try:
                if net is not None and ipaddress.IPv4Address(gw) not in net.network:
                    self.err("gateway", f"{gw} is not inside {net.network}")
            except ValueError:
                self.err("gateway", f"'{gw}' is not an IPv4 address")
        if "ip" in self.errors or "gateway" in self.errors or (ip, gw) == (cur_ip, cur_gw):
            return
        words = f"IP → {ip or 'dhcp'}{' via ' + gw if gw else ''}"
        if self.qemu:
            if not ip:
                self.set_or_clear("ipconfig0", "", "IP configuration")
            else:
                self.put("ipconfig0", "ip=dhcp" if ip == "dhcp" else f"ip={ip}" + (f",gw={gw}" if gw else ""), words)
        elif "net0" not in self.config:
            self.err("ip", "the container has no network card net0 to put the address on")
        else:
            self.put("net0", set_props(self.config["net0"], {"ip": ip or "dhcp", "gw": gw or None}), words)

    def disks(self) -> None:
        guest, qemu = self.guest, self.qemu
        resizable = {d["key"]: d for d in resizable_disks(guest)}
        for key, gib in (self.changes.get("resize") or {}).items():
            disk, gib, field = resizable.get(key), int(gib), f"resize.{key}"
            if disk is None:
                self.err(field, f"{guest.kind} has no disk {key} that can be resized")
            elif gib * GiB < disk["bytes"]:
                self.err(field, f"disks can only grow: {key} is {disk['size']} now; give at least {disk['gib']} GiB")
            elif gib > MAX_DISK_GIB:
                self.err(field, f"at most {MAX_DISK_GIB} GiB")
            elif gib * GiB > disk["bytes"]:
                self.plan.resizes.append((key, f"{gib}G"))
                self.plan.resize_summary.append(f"{key} {disk['size']} → {gib}G")
        storage_ids = set(storages_for(guest))
        for i, disk in enumerate(self.changes.get("add_disks") or []):
            prefix = f"add_disks.{i}"
            storage, size = str(disk.get("storage") or ""), disk.get("size")
            mountpoint = str(disk.get("mountpoint") or "").strip()
            if storage not in storage_ids:
                self.err(f"{prefix}.storage", f"'{storage}' is not a storage for "
                         f"{'disk images' if qemu else 'container volumes'} on node {guest.node.name}; "
                         f"one of: {', '.join(sorted(storage_ids)) or 'none'}")
            if size is None or not 1 <= int(size) <= MAX_DISK_GIB:
                self.err(f"{prefix}.size", f"give a size between 1 and {MAX_DISK_GIB} GiB")
            if not qemu and not MOUNT_RE.match(mountpoint or "-"):
                self.err(f"{prefix}.mountpoint", "give the path inside the container, e.g. /data")
            key = self._free_key("scsi" if qemu else "mp", 31 if qemu else 256)
            if key is None:
                self.err(f"{prefix}.storage", "no free disk slot left")
            if key is None or any(k.startswith(prefix + ".") for k in self.errors):
                continue
            self.put(key, f"{storage}:{int(size)}" + ("" if qemu else f",mp={mountpoint}"),
                     f"new disk {key}: {int(size)} GiB on {storage}")

    def _free_key(self, prefix: str, limit: int) -> str | None:
        for n in range(limit):
            key = f"{prefix}{n}"
            if key not in self.config and key not in self.taken:
                self.taken.add(key)
                return key
        return None

    def _nic(self, prefix: str, nic: dict) -> dict | None:
        """Property-string updates (bridge, tag, firewall) from an API NIC dict; None when invalid."""
        out = {}
        if "bridge" in nic:
            out["bridge"] = str(nic.get("bridge") or "").strip()
            if not BRIDGE_RE.match(out["bridge"]):
                self.err(f"{prefix}.bridge", "give a bridge name such as vmbr0")
        if "vlan" in nic:
            vlan = nic.get("vlan")
            if vlan not in (None, "") and not 1 <= int(vlan) <= 4094:
                self.err(f"{prefix}.vlan", "a VLAN tag is between 1 and 4094 (empty for none)")
            out["tag"] = str(int(vlan)) if vlan not in (None, "") else None
        if nic.get("firewall") is not None:
            out["firewall"] = "1" if nic["firewall"] else None
        return None if any(k.startswith(prefix + ".") for k in self.errors) else out

    def nets(self) -> None:
        guest, config = self.guest, self.config
        nets = {n["key"] for n in guest_config.networks(config, guest.type)}
        removed = [str(k) for k in self.changes.get("remove_nets") or []]
        for key in removed:
            if key not in nets:
                self.err("remove_nets", f"{guest.kind} has no network card {key}")
            else:
                self.plan.delete.append(key)
                self.plan.summary.append(f"network card {key} removed")
        for key, nic in (self.changes.get("nets") or {}).items():
            if key in removed:
                continue
            if key not in nets:
                self.err(f"nets.{key}", f"{guest.kind} has no network card {key}")
                continue
            current = guest_config.parse_property_string(config[key], "model")
            wanted = {k: v for k, v in (self._nic(f"nets.{key}", nic) or {}).items() if (current.get(k) or None) != v}
            if wanted:
                self.put(key, set_props(config[key], wanted), f"network card {key} → " + ", ".join(
                    f"{'vlan' if k == 'tag' else k} {v if v is not None else 'off'}" for k, v in wanted.items()))
        for i, nic in enumerate(self.changes.get("add_nets") or []):
            updates = self._nic(f"add_nets.{i}", {"bridge": nic.get("bridge"), "vlan": nic.get("vlan"),
                                                  "firewall": nic.get("firewall", False)})
            key = self._free_key("net", 32)
            if key is None:
                self.err(f"add_nets.{i}.bridge", "no free network card slot left")
            if updates is None or key is None:
                continue
            extra = "".join(f",{k}={v}" for k, v in (("tag", updates["tag"]), ("firewall", updates["firewall"])) if v)
            if self.qemu:
                value = f"virtio,bridge={updates['bridge']}"  # Proxmox generates the MAC
            else:
                value = f"name=eth{key[3:]},bridge={updates['bridge']},ip=dhcp,type=veth"
            self.put(key, value + extra, f"new network card {key} on {updates['bridge']}")


def plan_changes(guest: Guest, changes: dict) -> ConfigPlan:
    """Compare `changes` (the API shape, see GuestConfigSerializer) with the guest's cached config and
    return what to send. Unchanged values are left out. Raises ValidationError with every field's
    reason (keys like `memory`, `resize.scsi0`, `nets.net0.vlan`, `add_disks.0.size`)."""
    planner = _Planner(guest, changes)
    planner.general()
    planner.cloud_init()
    planner.disks()
    planner.nets()
    if planner.errors:
        raise ValidationError(planner.errors)
    return planner.plan
