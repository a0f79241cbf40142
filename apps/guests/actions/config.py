"""Change a guest's configuration: cores, memory, disks (add, grow), network cards, cloud-init,
tags, description, protection, start on boot; with Proxmox's digest for optimistic locking.

How the edit form gets a fresh config + digest: opening /guests/<pk>/config/ queues the guest's
targeted refresh (guests.guest_refresh: config incl. digest, snapshots, tasks) and the page polls
our database (never Proxmox) until that read has landed, then renders the form from it with the
digest in a hidden field. Every action's worker re-reads the guest the same way when it ends.

How a save runs: the config PUT is synchronous in Proxmox, so the service sends it in the request
with the digest; a conflict or a refused value comes back at once (form banner / API 409 or 400
with Proxmox's exact message) and nothing is queued. Disk resizes are Proxmox tasks: they and the
re-read run as the operation's steps in the worker. Resize-only saves send the digest with the
first resize instead.

Also home of the small helpers the other action modules of this package share (snapshots, clone).
"""

from __future__ import annotations

import ipaddress
import math
import re
from dataclasses import dataclass, field
from urllib.parse import quote, unquote

from celery import shared_task
from django import forms
from django.contrib.auth.mixins import LoginRequiredMixin
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.http import Http404
from django.shortcuts import render
from django.template.loader import render_to_string
from django.urls import path
from django.utils import timezone
from django.utils.cache import patch_vary_headers
from django.views import View
from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import serializers, status
from rest_framework.permissions import IsAuthenticated
from rest_framework.response import Response
from rest_framework.views import APIView

from apps.core import live
from apps.core import api as _core_api  # noqa: F401  (loads DRF generics before our schema decorators run)
from apps.core.models import AuditResult
from apps.core.scoping import is_operator
from apps.core.services import audit_log
from apps.operations.api.serializers import OperationSerializer
from apps.operations.clients import client_for
from apps.operations.live import progress_context
from apps.operations.models import Operation
from apps.operations.services import OperationReporter, follow_upid, operation_create, run_operation
from apps.proxmox import ProxmoxError, ProxmoxTaskError, ProxmoxUnreachable, ProxmoxValidationError

from .. import config as guest_config
from .. import services
from ..choices import GuestType
from ..models import Guest
from ..selectors import guest_get

GiB = 1024**3
_UNITS = {"": 1, "K": 1024, "M": 1024**2, "G": GiB, "T": 1024**4}

# -- shared by the action modules ----------------------------------------------------------------


class ActionRefused(Exception):
    """Proxmox refused a synchronous call: `message` in the user's words with Proxmox's text at the
    end, `proxmox_message` the exact text, `status` the HTTP answer the API gives (409 / 502)."""

    def __init__(self, message: str, *, proxmox_message: str = "", status: int = 409):
        super().__init__(message)
        self.message, self.proxmox_message, self.status = message, proxmox_message, status


class ConfigConflict(ActionRefused):
    """The digest no longer matches: someone else changed the guest since the form was opened."""


CONFLICT_TEXT = "Someone else changed this guest since you opened the form: reload to see their change."
_DIGEST_RE = re.compile(r"detected modified configuration|digest", re.IGNORECASE)
# Reasons the power actions' explain_error does not know, in the user's words.
_MORE_REASONS = [
    (re.compile(r"protection mode enabled"),
     "protection is on; turn it off in the guest's settings first"),
    (re.compile(r"used in HA resources and purge parameter not set"),
     "it is managed by HA; ask to purge its HA and backup-job entries too"),
    (re.compile(r"is running - destroy failed|container is running"), "it is running; stop it first"),
    (re.compile(r"contains snapshots"), "it has snapshots; delete them first"),
    (re.compile(r"convert a (VM|CT) to template if"), "it is running; shut it down first"),
    (re.compile(r"template to a template"), "it is already a template"),
    (re.compile(r"shrinking disks is not supported"), "disks can only grow"),
    (re.compile(r"not enough free space on storage '(?P<s>[^']+)'"), "storage {s} is full"),
    (re.compile(r"snapshot name '(?P<n>[^']+)' already used"), "a snapshot named {n} already exists"),
    (re.compile(r"snapshot '(?P<n>[^']+)' does not exist"), "snapshot {n} does not exist (any more)"),
    (re.compile(r"snapshot feature is not available"), "one of its disks is on storage without snapshots"),
    (re.compile(r"Linked clone feature is not supported"), "its storage cannot make linked clones; use a full clone"),
    (re.compile(r"uses local storage"), "its disks are on local storage, so it can only be cloned on its own node"),
    (re.compile(r"config file already exists|already exists"), "that VMID is already used"),
]


def explain(verb: str, guest: Guest, exc: ProxmoxError) -> str:
    """`Could not <verb> VM 100 (web-01): <reason in words>. Proxmox said: <exact message>`."""
    text = exc.message or str(exc)
    if not isinstance(exc, ProxmoxUnreachable) and not re.search(r"is locked|no quorum", text):
        for pattern, reason in _MORE_REASONS:
            match = pattern.search(text)
            if match:
                return f"Could not {verb} {guest.kind} {guest}: {reason.format(**match.groupdict())}. " \
                       f"Proxmox said: {text}"
    return services.explain_error(verb, guest, exc)


def require_operator(user, guest: Guest) -> None:
    if not is_operator(user):
        raise PermissionDenied("only operators may change guests until tenancy exists")
    if guest.node_id is None:
        raise ValidationError({"node": [f"the node of {guest} is not known yet; wait for the next sync"]})


def start_task(client, guest: Guest, verb: str, method: str, path: str, **params):
    """Call Proxmox for `guest`; a refusal raises GuestActionError in the user's words."""
    try:
        return client.request(method, path, **params)
    except ProxmoxError as exc:
        raise services.GuestActionError(explain(verb, guest, exc), status=exc.status) from exc


def follow(operation, client, guest: Guest, verb: str, upid: str, reporter, **kwargs) -> None:
    try:
        follow_upid(operation, client, guest.node.name, upid, reporter=reporter, **kwargs)
    except ProxmoxTaskError as exc:
        raise services.GuestActionError(explain(verb, guest, exc), status=exc.status) from exc


def refresh_after(guest: Guest, client, reporter: OperationReporter) -> None:
    """Targeted re-read of this guest (config + digest, snapshots, tasks, status) after an action,
    then push its snapshot tree to the open pages (`guest-<pk>`)."""
    try:
        services._status_update(guest, client)
        services.guest_refresh(guest=guest, client=client)
    except ProxmoxError as exc:
        reporter.event(f"Could not re-read the guest from Proxmox: {exc}", level="warning")
        return
    push_snapshot_tree(guest.pk)


def push_snapshot_tree(guest_id: int) -> None:
    from .snapshots import snapshot_tree_context  # the tree lives with the snapshot actions

    guest = Guest.objects.select_related("node", "cluster").filter(pk=guest_id).first()
    if guest is None:
        return
    html = render_to_string("guests/snapshots/tree.html", {**snapshot_tree_context(guest), "oob": True})
    live.push(f"guest-{guest_id}", html=html, data={"type": "guest.snapshots", "id": guest_id})


def guest_or_404(request, pk) -> Guest:
    guest = guest_get(user=request.user, pk=pk)
    if guest is None:
        raise Http404("No such guest.")
    return guest


def partial(request, template: str, context: dict, status_code: int = 200):
    response = render(request, template, context, status=status_code)
    patch_vary_headers(response, ("HX-Request",))
    return response


def error_text(exc: ValidationError) -> str:
    return "; ".join(f"{k}: {m}" if k != "__all__" else m for k, msgs in exc.message_dict.items() for m in msgs)


def accepted(request, operation: Operation) -> Response:
    return Response(OperationSerializer(operation, context={"request": request}).data, status=status.HTTP_202_ACCEPTED)


def refused(exc: ActionRefused) -> Response:
    return Response({"detail": exc.message, "proxmox_message": exc.proxmox_message}, status=exc.status)


def audit(request, action: str, guest: Guest, operation: Operation | None = None, result=AuditResult.ACCEPTED,
          **detail) -> None:
    if operation is not None:
        detail["operation"] = str(operation.pk)
    audit_log(user=request.user, action=action, target=guest, result=result, request=request, detail=detail or None)


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


def _tags(value) -> list[str]:
    if isinstance(value, (list, tuple)):
        value = ";".join(str(v) for v in value)
    return [t for t in re.split(r"[;,\s]+", str(value or "")) if t]


def _ipconfig(guest: Guest) -> tuple[str, str]:
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

    keys = [line.strip() for line in str(text).splitlines() if line.strip() and not line.strip().startswith("#")]
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
            tags = _tags(changes["tags"])
            bad = [t for t in tags if not TAG_RE.match(t)]
            if bad:
                self.err("tags", f"invalid tag '{bad[0]}': letters, digits and _ - + . only, not starting with - + .")
            elif sorted(tags) != sorted(_tags(config.get("tags"))):
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
        cur_ip, cur_gw = _ipconfig(self.guest)
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
        from apps.storage.models import Storage

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
        storage_ids = set(Storage.objects.filter(
            cluster_id=guest.cluster_id, nodes__contains=[guest.node.name],
            content__contains=["images" if qemu else "rootdir"]).values_list("storage", flat=True))
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


# -- the service and its worker -------------------------------------------------------------------


def guest_config_update(*, guest: Guest, user, changes: dict) -> Operation:
    """Apply `changes` to `guest`: the config PUT (with `changes['digest']` when given) is sent now,
    synchronously like Proxmox; disk resizes (tasks) and the re-read run as operation
    `guest.config`. Guarantees: invalid input raises ValidationError (field map) before anything
    reaches Proxmox; a changed digest raises ConfigConflict with Proxmox's message; any other refusal
    raises ActionRefused; in those cases nothing changed and nothing is queued."""
    require_operator(user, guest)
    plan = plan_changes(guest, changes)
    if not plan:
        raise ValidationError({"__all__": ["nothing to change: every value is what the guest already has"]})
    digest = (changes.get("digest") or "").strip() or None
    if plan.params or plan.delete:
        client = client_for(guest.cluster_id)
        try:
            client.put(f"{guest.api_path}/config", digest=digest, delete=",".join(plan.delete) or None,
                       **plan.params)
        except ProxmoxValidationError as exc:
            raise ValidationError({k: [f"Proxmox refused it: {v}"] for k, v in exc.errors.items()}
                                  or {"__all__": [f"Proxmox refused it: {exc}"]}) from exc
        except ProxmoxError as exc:
            if digest and _DIGEST_RE.search(exc.message):
                raise ConfigConflict(f"{CONFLICT_TEXT} Proxmox said: {exc.message}",
                                     proxmox_message=exc.message) from exc
            raise ActionRefused(explain("change", guest, exc), proxmox_message=exc.message,
                                status=502 if isinstance(exc, ProxmoxUnreachable) else 409) from exc
        finally:
            client.close()
        digest = None  # the PUT changed the digest; the resizes follow our own change
    operation = operation_create(
        kind="guest.config", user=user, task_name="guests.guest_config", target=guest, cluster_id=guest.cluster_id,
        title=f"Change {guest.kind} {guest}",
        kwargs={"guest_id": guest.pk, "resizes": plan.resizes, "digest": digest,
                "saved": bool(plan.params or plan.delete)})
    if plan.params or plan.delete:
        OperationReporter(operation).event("Configuration saved in Proxmox: " + "; ".join(plan.summary), progress=10)
    return operation


def run_config(operation, reporter: OperationReporter, *, guest_id: int, resizes: list, digest: str | None = None,
               saved: bool = False) -> dict:
    """Worker side: each disk resize as a Proxmox task (grow only), then the targeted re-read."""
    guest = Guest.objects.select_related("node", "cluster").get(pk=guest_id)
    client = client_for(guest.cluster_id)
    try:
        start, span = (10, 80) if saved else (0, 90)
        for i, (disk, size) in enumerate(resizes):
            low, high = start + span * i / len(resizes), start + span * (i + 1) / len(resizes)
            reporter.event(f"Growing disk {disk} to {size}", progress=low)
            upid = start_task(client, guest, f"grow disk {disk} of", "PUT", f"{guest.api_path}/resize",
                              disk=disk, size=size, digest=digest if i == 0 else None)
            follow(operation, client, guest, f"grow disk {disk} of", upid, reporter, progress_range=(low, high))
        reporter.event("Re-reading the configuration from Proxmox", progress=95)
        refresh_after(guest, client, reporter)
        return {"resized": [d for d, _ in resizes]}
    except Exception:
        refresh_after(guest, client, reporter)  # the PUT step may have changed it: show what is true now
        raise
    finally:
        client.close()


@shared_task(name="guests.guest_config")
def guest_config_task(operation_id: str, **kwargs) -> None:
    run_operation(operation_id, lambda op, reporter: run_config(op, reporter, **kwargs))


# -- form and views ---------------------------------------------------------------------------------

FRESH_SECONDS = 3  # a read this recent is good enough to edit from (no new read queued)
WAIT_SECONDS = 30  # how long the page waits for the read before saying Proxmox did not answer
ERROR_GRACE = 5


def _key(api_key: str) -> str:
    return api_key.replace(".", "_")


class GuestConfigForm(forms.Form):
    """Fields built from the guest's config; `changes()` gives the API-shaped dict for the service."""

    digest = forms.CharField(widget=forms.HiddenInput, required=False)
    cores = forms.IntegerField(label="CPU cores", min_value=1)
    memory = forms.IntegerField(label="Memory (MiB)", min_value=1)
    onboot = forms.BooleanField(label="Start on boot", required=False)
    protection = forms.BooleanField(label="Protection (no delete, no disk removal)", required=False)
    tags = forms.CharField(required=False, help_text="Separated by spaces, commas or semicolons.")
    description = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 3}))

    def __init__(self, *args, guest: Guest, storages: list[str], **kwargs):
        super().__init__(*args, **kwargs)
        self.guest = guest
        config = guest.config or {}
        qemu = guest.type == GuestType.QEMU
        f = self.fields
        initial = {"digest": guest.config_digest, "cores": config.get("cores", 1),
                   "memory": str(config.get("memory", 512)).split("=")[-1],
                   "onboot": str(config.get("onboot", 0)) == "1", "protection": str(config.get("protection", 0)) == "1",
                   "tags": " ".join(_tags(config.get("tags"))), "description": config.get("description", "")}
        if not qemu:
            f["swap"] = forms.IntegerField(label="Swap (MiB)", min_value=0)
            initial["swap"] = config.get("swap", 512)
        ip, gw = _ipconfig(guest)
        if qemu:
            f["ciuser"] = forms.CharField(label="User", required=False)
            f["sshkeys"] = forms.CharField(label="SSH public keys", required=False, help_text="One per line.",
                                           widget=forms.Textarea(attrs={"rows": 3, "class": "mono"}))
            initial.update(ciuser=config.get("ciuser", ""), sshkeys=unquote(config.get("sshkeys", "")).strip())
        f["ip"] = forms.CharField(label="IPv4 address", required=False, help_text="dhcp, or an address with prefix: 10.0.0.5/24")
        f["gateway"] = forms.CharField(label="Gateway", required=False)
        initial.update(ip=ip, gateway=gw)
        self.disk_rows = resizable_disks(guest)
        for disk in self.disk_rows:
            name = _key(f"resize.{disk['key']}")
            f[name] = forms.IntegerField(label=f"{disk['key']} size (GiB)", min_value=1)
            initial[name] = disk["gib"]
            disk["field"] = name
        choices = [("", "— no new disk —")] + [(s, s) for s in storages]
        f["add_disks_0_storage"] = forms.ChoiceField(label="Storage", choices=choices, required=False)
        f["add_disks_0_size"] = forms.IntegerField(label="Size (GiB)", min_value=1, required=False)
        if not qemu:
            f["add_disks_0_mountpoint"] = forms.CharField(label="Mount point", required=False)
        self.net_rows = guest_config.networks(config, guest.type)
        for nic in self.net_rows:
            base = _key(f"nets.{nic['key']}")
            f[f"{base}_bridge"] = forms.CharField(label="Bridge")
            f[f"{base}_vlan"] = forms.IntegerField(label="VLAN", required=False)
            f[f"{base}_firewall"] = forms.BooleanField(label="Firewall", required=False)
            f[f"{base}_remove"] = forms.BooleanField(label="Remove", required=False)
            initial.update({f"{base}_bridge": nic["bridge"], f"{base}_vlan": nic["vlan"] or None,
                            f"{base}_firewall": nic["firewall"]})
            nic["base"] = base
        f["add_nets_0_bridge"] = forms.CharField(label="Bridge", required=False, help_text="Empty: no new card.")
        f["add_nets_0_vlan"] = forms.IntegerField(label="VLAN", required=False)
        f["add_nets_0_firewall"] = forms.BooleanField(label="Firewall", required=False)
        if not self.is_bound:
            self.initial = initial

    def disk_fields(self) -> list[tuple[dict, forms.BoundField]]:
        return [(disk, self[disk["field"]]) for disk in self.disk_rows]

    def net_fields(self) -> list[tuple[dict, list[forms.BoundField]]]:
        return [(nic, [self[f"{nic['base']}_{s}"] for s in ("bridge", "vlan", "firewall", "remove")])
                for nic in self.net_rows]

    def changes(self) -> dict:
        d = self.cleaned_data
        out = {k: d.get(k) for k in ("digest", "cores", "memory", "swap", "description", "tags", "onboot",
                                      "protection", "ciuser", "sshkeys", "ip", "gateway") if k in self.fields}
        out["resize"] = {disk["key"]: d[disk["field"]] for disk in self.disk_rows if d.get(disk["field"])}
        if d.get("add_disks_0_storage") or d.get("add_disks_0_size"):
            out["add_disks"] = [{"storage": d.get("add_disks_0_storage"), "size": d.get("add_disks_0_size"),
                                 "mountpoint": d.get("add_disks_0_mountpoint", "")}]
        out["nets"], out["remove_nets"] = {}, []
        for nic in self.net_rows:
            base = nic["base"]
            if d.get(f"{base}_remove"):
                out["remove_nets"].append(nic["key"])
            else:
                out["nets"][nic["key"]] = {"bridge": d.get(f"{base}_bridge"), "vlan": d.get(f"{base}_vlan"),
                                           "firewall": d.get(f"{base}_firewall")}
        if d.get("add_nets_0_bridge"):
            out["add_nets"] = [{"bridge": d["add_nets_0_bridge"], "vlan": d.get("add_nets_0_vlan"),
                                "firewall": d.get("add_nets_0_firewall")}]
        return out

    def add_service_errors(self, exc: ValidationError) -> None:
        for key, messages in exc.message_dict.items():
            name = _key(key)
            if key == "remove_nets" or name not in self.fields:
                name = None
            for message in messages:
                self.add_error(name, message)


def _storages_for(guest: Guest) -> list[str]:
    from apps.storage.models import Storage

    if guest.node_id is None:
        return []
    return sorted(set(Storage.objects.filter(
        cluster_id=guest.cluster_id, nodes__contains=[guest.node.name],
        content__contains=["images" if guest.type == GuestType.QEMU else "rootdir"]).values_list("storage", flat=True)))


def _form_context(guest: Guest, form: GuestConfigForm, **extra) -> dict:
    return {"guest": guest, "form": form, **extra}


class GuestConfigPageView(LoginRequiredMixin, View):
    """GET: the edit page; queues a fresh read of the guest unless one just landed."""

    def get(self, request, pk):
        from .. import tasks

        guest = guest_or_404(request, pk)
        since = timezone.now()
        if guest.details_synced_at and (since - guest.details_synced_at).total_seconds() < FRESH_SECONDS:
            since = guest.details_synced_at
        elif guest.node_id is not None:
            transaction.on_commit(lambda: tasks.guest_refresh.delay(guest.pk))
        return render(request, "guests/config/config.html", {
            "guest": guest, "object": guest, "since": since.timestamp(), "live_groups": [f"guest-{guest.pk}"]})


class GuestConfigFormView(LoginRequiredMixin, View):
    """GET ?since=<ts>: the form once a read newer than `since` landed, else the waiting block
    (which asks again). POST: save; answers the progress panel, or the form with its errors."""

    def get(self, request, pk):
        guest = guest_or_404(request, pk)
        try:
            since = float(request.GET.get("since", "0"))
        except ValueError:
            since = 0.0
        synced = guest.details_synced_at.timestamp() if guest.details_synced_at else 0.0
        waited = timezone.now().timestamp() - since
        if synced + 0.001 < since:
            # An error saved before this read was queued may be old news: give the new read a moment.
            if (guest.details_error and waited > ERROR_GRACE) or waited > WAIT_SECONDS:
                return partial(request, "guests/config/loading.html", {
                    "guest": guest, "since": since, "failed": guest.details_error or "Proxmox did not answer in time."})
            return partial(request, "guests/config/loading.html", {"guest": guest, "since": since})
        form = GuestConfigForm(guest=guest, storages=_storages_for(guest))
        return partial(request, "guests/config/form.html", _form_context(guest, form))

    def post(self, request, pk):
        guest = guest_or_404(request, pk)
        form = GuestConfigForm(request.POST, guest=guest, storages=_storages_for(guest))
        if form.is_valid():
            try:
                operation = guest_config_update(guest=guest, user=request.user, changes=form.changes())
            except ValidationError as exc:
                form.add_service_errors(exc)
            except PermissionDenied as exc:
                audit(request, "guests.guest_config", guest, result=AuditResult.DENIED)
                return partial(request, "guests/config/form.html", _form_context(guest, form, refused=str(exc)))
            except ConfigConflict as exc:
                audit(request, "guests.guest_config", guest, result=AuditResult.FAILURE, error=exc.message)
                return partial(request, "guests/config/form.html", _form_context(
                    guest, form, conflict=exc.proxmox_message, conflict_text=CONFLICT_TEXT))
            except ActionRefused as exc:
                audit(request, "guests.guest_config", guest, result=AuditResult.FAILURE, error=exc.message)
                return partial(request, "guests/config/form.html", _form_context(guest, form, refused=exc.message))
            else:
                audit(request, "guests.guest_config", guest, operation)
                return partial(request, "guests/config/saved.html", {"guest": guest, **progress_context(operation)})
        return partial(request, "guests/config/form.html", _form_context(guest, form))


urlpatterns = [
    path("guests/<int:pk>/config/", GuestConfigPageView.as_view(), name="guest_config"),
    path("guests/<int:pk>/config/form/", GuestConfigFormView.as_view(), name="guest_config_form"),
]


# -- API ----------------------------------------------------------------------------------------------


class _NicSerializer(serializers.Serializer):
    bridge = serializers.CharField(required=False)
    vlan = serializers.IntegerField(required=False, allow_null=True)
    firewall = serializers.BooleanField(required=False, allow_null=True, default=None)


class _NewDiskSerializer(serializers.Serializer):
    storage = serializers.CharField()
    size = serializers.IntegerField(help_text="GiB")
    mountpoint = serializers.CharField(required=False, allow_blank=True, help_text="containers: path inside")


class GuestConfigSerializer(serializers.Serializer):
    """Every field is optional; values equal to the current ones are ignored."""

    digest = serializers.CharField(required=False, allow_blank=True,
                                   help_text="`digest` from GET: the change is refused (409) if the guest changed since")
    cores = serializers.IntegerField(required=False)
    memory = serializers.IntegerField(required=False, help_text="MiB")
    swap = serializers.IntegerField(required=False, help_text="MiB (containers)")
    description = serializers.CharField(required=False, allow_blank=True)
    tags = serializers.ListField(child=serializers.CharField(), required=False)
    protection = serializers.BooleanField(required=False, allow_null=True, default=None)
    onboot = serializers.BooleanField(required=False, allow_null=True, default=None)
    ciuser = serializers.CharField(required=False, allow_blank=True, help_text="cloud-init user (VMs)")
    sshkeys = serializers.CharField(required=False, allow_blank=True, help_text="OpenSSH public keys, one per line")
    ip = serializers.CharField(required=False, allow_blank=True, help_text="'dhcp' or IPv4/prefix (VM: ipconfig0, CT: net0)")
    gateway = serializers.CharField(required=False, allow_blank=True)
    resize = serializers.DictField(child=serializers.IntegerField(), required=False,
                                   help_text="disk -> new size in GiB (grow only), e.g. {\"scsi0\": 64}")
    add_disks = _NewDiskSerializer(many=True, required=False)
    nets = serializers.DictField(child=_NicSerializer(), required=False, help_text="net0 -> {bridge, vlan, firewall}")
    remove_nets = serializers.ListField(child=serializers.CharField(), required=False)
    add_nets = _NicSerializer(many=True, required=False)


class GuestConfigAPIView(APIView):
    """GET: the guest's config as last read, with its `digest`. PATCH/PUT: change it (202 with the
    operation; 400 field errors; 409 when the digest no longer matches, with Proxmox's message)."""

    permission_classes = [IsAuthenticated]
    serializer_class = GuestConfigSerializer

    def _guest(self, request, pk) -> Guest:
        return guest_or_404(request, pk)

    @extend_schema(responses={200: inline_serializer("GuestConfigRead", fields={
        "config": serializers.DictField(), "digest": serializers.CharField(),
        "read_at": serializers.DateTimeField(allow_null=True)})})
    def get(self, request, pk):
        guest = self._guest(request, pk)
        return Response({"config": guest.config, "digest": guest.config_digest,
                         "read_at": guest.details_synced_at})

    @extend_schema(request=GuestConfigSerializer, responses={202: OperationSerializer})
    def patch(self, request, pk):
        guest = self._guest(request, pk)
        body = GuestConfigSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        try:
            operation = guest_config_update(guest=guest, user=request.user, changes=dict(body.validated_data))
        except ActionRefused as exc:
            audit(request, "guests.guest_config", guest, result=AuditResult.FAILURE, error=exc.message)
            return refused(exc)
        audit(request, "guests.guest_config", guest, operation)
        return accepted(request, operation)

    put = patch


api_urlpatterns = [
    path("guests/<int:pk>/config/", GuestConfigAPIView.as_view(), name="guest-config"),
]
