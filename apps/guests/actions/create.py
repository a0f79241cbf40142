"""Create a VM (from an ISO image, or by cloning a template) or a container (from a CT template).

    wizard / API -> plan_vm / plan_ct     every check against the synced inventory (DB only), as field errors
                 -> guest_create_vm / _ct  one transaction: capacity hook, vmid reservation, Operation
                 -> Celery guests.guest_create -> run_create (Proxmox: create|clone, config, resize, start)
                 -> targeted re-sync of the new guest, reservation released

Guarantees: nothing reaches Proxmox until the whole request is valid; the vmid is reserved in the
DB (VmidReservation, unique per cluster) before any Proxmox call that uses it; a retried run finds
the guest it already created and does not create a second one; a failed or cancelled run deletes
what it created on Proxmox (purge) and releases the reservation, so nothing is left behind.
The CT root password never enters the operation's kwargs: it waits, encrypted, in the cache.

API: POST /api/v1/guests/create-vm/ and /api/v1/guests/create-ct/ -> 202 with the operation
(two endpoints because a VM and a container take different fields; the OpenAPI schema shows both).
UI: /guests/create/vm/ and /guests/create/ct/ (an htmx wizard; each step re-validates on the server).
"""

from __future__ import annotations

import ipaddress
import logging
import math
import re
import time
from urllib.parse import quote

from celery import shared_task

import apps.core.api  # noqa: F401  (first: DRF's generics import our pagination class from it)
from cryptography.hazmat.primitives.serialization import load_ssh_public_key
from django import forms
from django.contrib.auth.mixins import LoginRequiredMixin
from django.core.cache import cache
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import IntegrityError, connection, transaction
from django.dispatch import receiver
from django.shortcuts import render
from django.urls import path
from django.utils import timezone
from django.utils.cache import patch_vary_headers
from django.views import View
from drf_spectacular.utils import extend_schema
from rest_framework import exceptions, serializers, status
from rest_framework.permissions import IsAuthenticated
from rest_framework.generics import GenericAPIView
from rest_framework.response import Response

from apps.core.fields import decrypt, encrypt
from apps.core.models import AuditResult
from apps.core.scoping import is_operator
from apps.core.services import audit_log
from apps.nodes.choices import NodeStatus
from apps.nodes.selectors import cluster_list, node_list
from apps.operations.api.serializers import OperationSerializer
from apps.operations.choices import OperationStatus
from apps.operations.clients import client_for
from apps.operations.live import progress_context
from apps.operations.models import Operation
from apps.operations.services import (
    OperationReporter,
    follow_upid,
    heartbeat_timeout,
    operation_create,
    run_operation,
)
from apps.operations.signals import operation_finished
from apps.proxmox import (
    ProxmoxError,
    ProxmoxUnreachable,
    ProxmoxValidationError,
    follow_task,
    parse_upid,
    task_ok,
)
from apps.storage.selectors import storage_content_list, storage_list

from .. import config as guest_config
from .. import services as guest_services
from ..choices import GuestType
from ..models import Guest, VmidReservation
from ..selectors import guest_list

logger = logging.getLogger(__name__)

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
DEFAULTS = {
    "source": "iso", "clone": "linked", "cores": 2, "memory": 2048, "disk_size": 32, "bridge": "vmbr0",
    "firewall": True, "ostype": "l26", "ip_mode": "dhcp", "unprivileged": True, "nesting": False, "swap": 512,
    "start": False, "node": "", "tags": "", "pool": "",
}
CT_DEFAULTS = {**DEFAULTS, "cores": 1, "memory": 1024, "disk_size": 8}
SECRET_TTL = 24 * 3600
_PROGRESS = {"create": (0, 70), "config": 75, "resize": (75, 85), "start": (85, 95), "sync": 98}


# -- small helpers ---------------------------------------------------------------------------------


class FieldErrors(dict):
    def add(self, field: str, message: str) -> None:
        self.setdefault(field, []).append(message)


def _gib(size_bytes: int) -> str:
    return f"{size_bytes / GiB:,.0f} GiB" if size_bytes >= GiB else f"{size_bytes / MiB:,.0f} MiB"


def _range(errors: FieldErrors, data: dict, field: str, limits: tuple[int, int], unit: str = "") -> int | None:
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
    return keys, problems


def parse_tags(value) -> list[str]:
    if isinstance(value, (list, tuple)):
        items = [str(v) for v in value]
    else:
        items = re.split(r"[;,\s]+", value or "")
    return [t.strip() for t in items if t and t.strip()]


def _network_checks(errors: FieldErrors, data: dict) -> dict:
    """Bridge/VLAN and the IPv4 settings: {"ip": "dhcp"|"10.0.0.5/24", "gw": str|None, ...}."""
    out = {"bridge": (data.get("bridge") or "").strip(), "vlan": data.get("vlan"), "firewall": bool(data.get("firewall"))}
    if not BRIDGE.match(out["bridge"]):
        errors.add("bridge", "must be a Linux bridge name such as vmbr0 (letters, digits, . _ -; at most 15)")
    if out["vlan"] not in (None, ""):
        out["vlan"] = _range(errors, data, "vlan", LIMITS["vlan"])
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


def _storage_on_node(rows, node) -> object | None:
    """The Storage row through which `node` sees this storage (local row of the node, or shared)."""
    for row in rows:
        if row.node_id == node.pk or (row.node_id is None and node.name in (row.nodes or [])):
            return row
    return None


def _free(row) -> int | None:
    return max(0, row.maxdisk - row.disk) if row is not None and row.maxdisk else None


# -- planning: every check on the inventory, no Proxmox call ------------------------------------------


def _cluster(errors: FieldErrors, user, data: dict):
    clusters = list(cluster_list(user=user))
    wanted = data.get("cluster")
    if wanted in (None, ""):
        if len(clusters) == 1:
            return clusters[0]
        errors.add("cluster", "choose a cluster" if clusters else "no cluster is registered yet")
        return None
    cluster = next((c for c in clusters if str(c.pk) == str(wanted)), None)
    if cluster is None:
        errors.add("cluster", f"no cluster with id {wanted}")
    return cluster


def _placement(errors: FieldErrors, user, cluster, data: dict, *, needs: list[tuple[str, list]], memory: int | None,
               cores: int | None, space: tuple[str, list, int] | None, allowed_nodes: set[str] | None = None):
    """Pick the node: the one asked for (checked), else the online node with the most free memory
    that sees every storage in `needs` [(field, storage rows)]. `space` = (field, rows, bytes) to
    check free space on the chosen node. Returns (node, reason) or (None, "")."""
    nodes = list(node_list(user=user).filter(cluster=cluster).order_by("name"))
    wanted = (data.get("node") or "").strip()

    def fits(node) -> list[tuple[str, str]]:
        problems = []
        if node.status != NodeStatus.ONLINE:
            problems.append(("node", f"node {node.name} is {node.get_status_display().lower()}"))
        if allowed_nodes is not None and node.name not in allowed_nodes:
            problems.append(("node", f"the template's disks are on local storage of {', '.join(sorted(allowed_nodes))}"))
        for field, rows in needs:
            if rows and _storage_on_node(rows, node) is None:
                problems.append((field, f"storage '{rows[0].storage}' is not available on node {node.name}"))
        if memory and node.maxmem and memory * MiB > node.maxmem:
            problems.append(("memory", f"node {node.name} has only {_gib(node.maxmem)} of memory"))
        if cores and node.maxcpu and cores > node.maxcpu:
            problems.append(("cores", f"node {node.name} has only {node.maxcpu} CPUs"))
        if space is not None:
            field, rows, need = space
            free = _free(_storage_on_node(rows, node))
            if free is not None and need > free:
                problems.append((field, f"not enough free space on '{rows[0].storage}' for node {node.name}: "
                                        f"{_gib(free)} free, {_gib(need)} needed"))
        return problems

    if wanted:
        node = next((n for n in nodes if n.name == wanted), None)
        if node is None:
            errors.add("node", f"no node named '{wanted}' in cluster {cluster}")
            return None, ""
        problems = fits(node)
        for field, message in problems:
            errors.add(field, message)
        return (None, "") if problems else (node, "chosen")
    candidates = [n for n in nodes if not fits(n)]
    if not candidates:
        reasons = sorted({m for n in nodes for _, m in fits(n)})
        errors.add("node", "no online node can take it: " + "; ".join(reasons) if reasons else "the cluster has no nodes")
        return None, ""
    best = max(candidates, key=lambda n: (n.maxmem - n.mem, n.name))
    return best, f"automatic: most free memory ({_gib(best.maxmem - best.mem)} free)"


def _common(errors: FieldErrors, user, data: dict, kind: str) -> dict:
    out = {}
    out["cores"] = _range(errors, data, "cores", LIMITS["cores"])
    out["memory"] = _range(errors, data, "memory", LIMITS["memory_vm" if kind == "qemu" else "memory_ct"], " MiB")
    out["disk_size"] = _range(errors, data, "disk_size", LIMITS["disk_size"], " GiB")
    out["net"] = _network_checks(errors, data)
    tags = parse_tags(data.get("tags"))
    for tag in tags:
        if not TAG.match(tag):
            errors.add("tags", f"'{tag}' is not a valid tag (letters, digits, _ + . -)")
    out["tags"] = tags
    pool = (data.get("pool") or "").strip()
    if pool and not POOL.match(pool):
        errors.add("pool", f"'{pool}' is not a valid pool name (letters, digits, _ -)")
    out["pool"] = pool
    out["start"] = bool(data.get("start"))
    return out


def _disk_storage(errors: FieldErrors, user, cluster, data: dict, content: str, field: str = "storage") -> list:
    name = (data.get(field) or "").strip()
    if not name:
        errors.add(field, "choose a storage")
        return []
    rows = list(storage_list(user=user).filter(cluster=cluster, storage=name))
    if not rows:
        errors.add(field, f"no storage named '{name}' in cluster {cluster}")
        return []
    if not rows[0].holds(content):
        what = "VM disks (content 'images')" if content == "images" else "container volumes (content 'rootdir')"
        errors.add(field, f"storage '{name}' does not hold {what}; it holds: {', '.join(rows[0].content) or 'nothing'}")
        return []
    return rows


def _volume_rows(errors: FieldErrors, user, cluster, volid: str, content: str, field: str) -> list:
    """Storage rows holding volume `volid` (an ISO or CT template) in the synced content lists."""
    if not volid:
        errors.add(field, "choose an ISO image" if content == "iso" else "choose a CT template")
        return []
    items = list(storage_content_list(user=user).filter(storage__cluster=cluster, volid=volid))
    if not items:
        errors.add(field, f"'{volid}' is not in the synced content of cluster {cluster}")
        return []
    if items[0].content != content:
        want = "an ISO image" if content == "iso" else "a CT template (vztmpl)"
        errors.add(field, f"'{volid}' is {items[0].get_content_display()}, not {want}")
        return []
    return [i.storage for i in items]


def _template_storages(template: Guest) -> list[str]:
    names = []
    for disk in guest_config.disks(template.config or {}, "qemu"):
        volume = disk["volume"]
        if ":" in volume and volume != "none":
            names.append(volume.split(":", 1)[0])
    return names


def plan_vm(*, user, data: dict) -> tuple[dict | None, FieldErrors]:
    """Check a VM request against the inventory; returns (plan, {}) or (None, field errors).
    Reads the database only. The plan holds the Proxmox parameters (no vmid yet, no secrets)."""
    data = {**DEFAULTS, **{k: v for k, v in data.items() if v is not None}}
    errors = FieldErrors()
    cluster = _cluster(errors, user, data)
    if cluster is None:
        return None, errors
    source = data.get("source")
    template = None
    iso_rows: list = []
    if source == "iso":
        iso_rows = _volume_rows(errors, user, cluster, (data.get("iso") or "").strip(), "iso", "iso")
    elif source == "template":
        vmid = data.get("template")
        template = guest_list(user=user).filter(cluster=cluster, vmid=vmid).defer(None).first() \
            if str(vmid or "").isdigit() else None
        if template is None:
            errors.add("template", "choose a VM template" if not vmid else f"no guest {vmid} in cluster {cluster}")
        elif template.type != GuestType.QEMU:
            errors.add("template", f"{template.vmid} is a container; use Create container")
            template = None
        elif not template.template:
            errors.add("template", f"VM {template} is not a template (convert it to a template first)")
            template = None
        elif template.node_id is None:
            errors.add("template", f"the node of template {template} is not known yet; wait for the next sync")
            template = None
        if data.get("clone") not in ("linked", "full"):
            errors.add("clone", "must be linked or full")
    else:
        errors.add("source", "must be iso or template")
    name = (data.get("name") or "").strip()
    if not DNS_NAME.match(name):
        errors.add("name", "must be a DNS name: letters, digits and hyphens, dot-separated, not starting or "
                           "ending with a hyphen" if name else "this field is required")
    common = _common(errors, user, data, "qemu")
    ostype = data.get("ostype") or "l26"
    if ostype not in dict(VM_OSTYPES):
        errors.add("ostype", f"must be one of {', '.join(dict(VM_OSTYPES))}")
    full = source == "iso" or data.get("clone") == "full"
    storage_rows = _disk_storage(errors, user, cluster, data, "images") if full else []
    template_gib = math.ceil(template.maxdisk / GiB) if template is not None and template.maxdisk else 0
    if template is not None and common["disk_size"] and common["disk_size"] < template_gib:
        errors.add("disk_size", f"the template's disk is {template_gib} GiB; disks cannot shrink")
    cloudinit = data.get("cloudinit")
    cloudinit = (source == "template") if cloudinit in (None, "") else bool(cloudinit)
    ci = {}
    if cloudinit:
        user_name = (data.get("ci_user") or "").strip()
        if user_name and not CI_USER.match(user_name):
            errors.add("ci_user", "must be a Linux user name (lowercase letters, digits, _ -; at most 32)")
        keys, problems = parse_ssh_keys(data.get("ssh_keys") or "")
        for problem in problems:
            errors.add("ssh_keys", problem)
        ci = {"user": user_name, "keys": keys}
    # Placement: where the disk storage, the ISO and the template's disks can be reached.
    allowed = None
    needs = [("storage", storage_rows), ("iso", iso_rows)]
    if template is not None:
        local = [n for n in _template_storages(template)
                 if not any(s.shared for s in storage_list(user=user).filter(cluster=cluster, storage=n))]
        if local or not template.config:  # unknown config: only the template's own node is sure to work
            allowed = {template.node.name}
        if not full:
            template_rows = [list(storage_list(user=user).filter(cluster=cluster, storage=n))
                             for n in _template_storages(template)]
            needs += [("template", rows) for rows in template_rows if rows]
    need_bytes = (max(common["disk_size"] or 0, template_gib) * GiB) if full else 0
    node, reason = (None, "")
    if cluster is not None and not any(f in errors for f in ("storage", "iso", "template")):
        node, reason = _placement(errors, user, cluster, data, needs=needs, memory=common["memory"],
                                  cores=common["cores"], allowed_nodes=allowed,
                                  space=("storage", storage_rows, need_bytes) if storage_rows else None)
    if errors:
        return None, errors
    net = common["net"]
    net0 = f"virtio,bridge={net['bridge']}" + (f",tag={net['vlan']}" if net["vlan"] else "") + \
        (",firewall=1" if net["firewall"] else "")
    config = {"name": name, "cores": common["cores"], "memory": str(common["memory"]), "ostype": ostype, "net0": net0}
    if common["tags"]:
        config["tags"] = ";".join(common["tags"])
    if cloudinit:
        config["ipconfig0"] = "ip=dhcp" if net["ip"] == "dhcp" else \
            f"ip={net['ip']}" + (f",gw={net['gw']}" if net["gw"] else "")
        if ci["user"]:
            config["ciuser"] = ci["user"]
        if ci["keys"]:
            config["sshkeys"] = quote("\n".join(ci["keys"]) + "\n", safe="")  # Proxmox wants it URL-encoded
        if net["nameservers"]:
            config["nameserver"] = net["nameservers"]
        if net["searchdomain"]:
            config["searchdomain"] = net["searchdomain"]
    plan = {"type": "qemu", "cluster_id": cluster.pk, "node": node.name, "placement": reason, "name": name,
            "source": source, "start": common["start"], "disk_size": common["disk_size"], "cloudinit": cloudinit,
            "storage": storage_rows[0].storage if storage_rows else "", "pool": common["pool"]}
    if source == "iso":
        storage = storage_rows[0].storage
        create = {**config, "sockets": 1, "cpu": "x86-64-v2-AES", "scsihw": "virtio-scsi-single", "agent": "1",
                  "scsi0": f"{storage}:{common['disk_size']},iothread=1,discard=on",
                  "ide2": f"{data['iso'].strip()},media=cdrom", "boot": "order=scsi0;ide2;net0"}
        if cloudinit:
            create["ide0"] = f"{storage}:cloudinit"
        if common["pool"]:
            create["pool"] = common["pool"]
        plan.update(create=create, iso=data["iso"].strip())
    else:
        clone = {"name": name, "full": full}
        if full:
            clone["storage"] = storage_rows[0].storage
        if node.name != template.node.name:
            clone["target"] = node.name
        if common["pool"]:
            clone["pool"] = common["pool"]
        plan.update(clone=clone, config=config, template_vmid=template.vmid, template_node=template.node.name,
                    template_name=template.name, clone_mode="full" if full else "linked")
    return plan, errors


def plan_ct(*, user, data: dict) -> tuple[dict | None, FieldErrors]:
    """Check a container request against the inventory; returns (plan, {}) or (None, field errors).
    Reads the database only. The root password is checked but never put in the plan."""
    data = {**CT_DEFAULTS, **{k: v for k, v in data.items() if v is not None}}
    errors = FieldErrors()
    cluster = _cluster(errors, user, data)
    if cluster is None:
        return None, errors
    ostemplate = (data.get("ostemplate") or "").strip()
    template_rows = _volume_rows(errors, user, cluster, ostemplate, "vztmpl", "ostemplate")
    hostname = (data.get("hostname") or "").strip()
    if not DNS_NAME.match(hostname):
        errors.add("hostname", "must be a DNS name: letters, digits and hyphens, dot-separated, not starting or "
                               "ending with a hyphen" if hostname else "this field is required")
    common = _common(errors, user, data, "lxc")
    swap = _range(errors, data, "swap", LIMITS["swap"], " MiB")
    password = data.get("password") or ""
    if password and len(password) < PASSWORD_MIN:
        errors.add("password", f"must be at least {PASSWORD_MIN} characters")
    keys, problems = parse_ssh_keys(data.get("ssh_keys") or "")
    for problem in problems:
        errors.add("ssh_keys", problem)
    if not password and not keys and not problems:
        errors.add("password", "give a root password or at least one SSH public key")
    storage_rows = _disk_storage(errors, user, cluster, data, "rootdir")
    node, reason = (None, "")
    if not any(f in errors for f in ("storage", "ostemplate")):
        node, reason = _placement(
            errors, user, cluster, data, needs=[("storage", storage_rows), ("ostemplate", template_rows)],
            memory=common["memory"], cores=common["cores"],
            space=("storage", storage_rows, (common["disk_size"] or 0) * GiB))
    if errors:
        return None, errors
    net = common["net"]
    net0 = f"name=eth0,bridge={net['bridge']}" + (f",tag={net['vlan']}" if net["vlan"] else "") + \
        (",firewall=1" if net["firewall"] else "") + f",ip={net['ip']}" + (f",gw={net['gw']}" if net["gw"] else "")
    create = {"ostemplate": ostemplate, "hostname": hostname, "cores": common["cores"], "memory": common["memory"],
              "swap": swap, "rootfs": f"{storage_rows[0].storage}:{common['disk_size']}", "net0": net0,
              "unprivileged": bool(data.get("unprivileged"))}
    if data.get("nesting"):
        create["features"] = "nesting=1"
    if keys:
        create["ssh-public-keys"] = "\n".join(keys) + "\n"
    if net["nameservers"]:
        create["nameserver"] = net["nameservers"]
    if net["searchdomain"]:
        create["searchdomain"] = net["searchdomain"]
    if common["tags"]:
        create["tags"] = ";".join(common["tags"])
    if common["pool"]:
        create["pool"] = common["pool"]
    plan = {"type": "lxc", "cluster_id": cluster.pk, "node": node.name, "placement": reason, "name": hostname,
            "source": "vztmpl", "start": common["start"], "disk_size": common["disk_size"],
            "storage": storage_rows[0].storage, "pool": common["pool"], "create": create,
            "has_password": bool(password)}
    return plan, errors


# -- reserve and enqueue ------------------------------------------------------------------------------


def reserve_capacity(*, user, cluster, cores: int, memory_mib: int, disk_gib: int) -> None:
    """Tenant quota hook (apps.permissions fills it): reserve the guest's vCPUs, memory and disk
    inside the caller's transaction (select_for_update on the quota), raising ValidationError
    (field map) when over quota. Now operators have no quota, so this reserves nothing."""


_VMID_LOCK = 0x766D6964  # advisory lock namespace ("vmid")


def reserve_vmid(*, cluster, operation_id=None, purpose: str = "create", client=None,
                 attempts: int = 50) -> VmidReservation:
    """Reserve a free vmid of `cluster`: Proxmox's /cluster/nextid answer, or the next id above it
    that neither a reservation nor a known guest holds (checked again with nextid?vmid=). Runs in a
    savepoint per try, so a clash with a concurrent request (unique (cluster, vmid)) just moves on.
    Call inside the caller's transaction (it holds a per-cluster advisory lock until commit): the
    row commits with its Operation. Raises
    ValidationError {"cluster": ...} when Proxmox does not answer or no id is free."""
    own = client is None
    client = client or client_for(cluster.pk)
    try:
        first = int(client.get("cluster/nextid"))
        # One reserver per cluster at a time (until the caller commits): concurrent requests then see
        # each other's reservations instead of racing on the same ids.
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(%s, %s)", [_VMID_LOCK, cluster.pk])

        def taken() -> set[int]:
            return set(VmidReservation.objects.filter(cluster=cluster, vmid__gte=first).values_list("vmid", flat=True)) \
                | set(Guest.objects.filter(cluster=cluster, vmid__gte=first).values_list("vmid", flat=True))

        held, candidate = taken(), first
        for _ in range(attempts):
            while candidate in held:
                candidate += 1
            if candidate != first:
                try:
                    client.get("cluster/nextid", vmid=candidate)
                except ProxmoxValidationError:  # Proxmox has it (a guest we have not synced yet)
                    held.add(candidate)
                    continue
            try:
                with transaction.atomic():
                    return VmidReservation.objects.create(cluster=cluster, vmid=candidate, operation_id=operation_id,
                                                          purpose=purpose)
            except IntegrityError:  # a concurrent request got it first
                held |= taken() | {candidate}
    except ProxmoxError as exc:
        raise ValidationError({"cluster": [f"could not get a free VMID from cluster {cluster}: {exc}"]}) from exc
    finally:
        if own:
            client.close()
    raise ValidationError({"cluster": [f"no free VMID found after {attempts} tries; try again"]})


def _secret_key(operation_id) -> str:
    return f"guests:create-secret:{operation_id}"


def _enqueue(*, user, plan: dict, password: str = "") -> Operation:
    from apps.nodes.models import Cluster

    if not is_operator(user):
        raise PermissionDenied("only operators may create guests until tenancy exists")
    cluster = Cluster.objects.get(pk=plan["cluster_id"])
    kind = "VM" if plan["type"] == "qemu" else "CT"
    with transaction.atomic():
        create = plan.get("create") or plan.get("config") or {}
        reserve_capacity(user=user, cluster=cluster, cores=int(create.get("cores") or 1),
                         memory_mib=int(create.get("memory") or 0), disk_gib=int(plan["disk_size"] or 0))
        reservation = reserve_vmid(cluster=cluster, purpose="create")
        vmid = reservation.vmid
        operation = operation_create(
            kind="guest.create", user=user, task_name="guests.guest_create", cluster_id=cluster.pk,
            kwargs={"plan": plan, "vmid": vmid}, target=("guests.vmid", f"{cluster.pk}:{vmid}", f"{kind} {vmid} ({plan['name']})"),
            title=f"Create {kind} {vmid} ({plan['name']}) on {plan['node']}")
        VmidReservation.objects.filter(pk=reservation.pk).update(operation_id=operation.pk)
        if password:
            cache.set(_secret_key(operation.pk), encrypt(password), SECRET_TTL)
    return operation


def guest_create_vm(*, user, data: dict) -> Operation:
    """Validate (field map ValidationError, nothing queued), reserve a vmid and queue the creation of
    a VM as an Operation (kind `guest.create`). Raises PermissionDenied for non-operators."""
    if not is_operator(user):
        raise PermissionDenied("only operators may create guests until tenancy exists")
    plan, errors = plan_vm(user=user, data=data)
    if errors:
        raise ValidationError(dict(errors))
    return _enqueue(user=user, plan=plan)


def guest_create_ct(*, user, data: dict) -> Operation:
    """As guest_create_vm, for a container; the root password travels encrypted beside the operation."""
    if not is_operator(user):
        raise PermissionDenied("only operators may create guests until tenancy exists")
    plan, errors = plan_ct(user=user, data=data)
    if errors:
        raise ValidationError(dict(errors))
    return _enqueue(user=user, plan=plan, password=data.get("password") or "")


# -- the worker ---------------------------------------------------------------------------------------


class CreateError(ProxmoxError):
    """A creation step failed; the message says which, in words, then Proxmox's exact text."""


_REASONS = [
    (re.compile(r"not enough free space|No space left|storage full", re.I), "the storage is full"),
    (re.compile(r"no quorum"), "the cluster has no quorum"),
    (re.compile(r"already exists"), "the VMID is already used on Proxmox"),
    (re.compile(r"is locked \((?P<lock>[\w-]+)\)"), "the guest is locked"),
    (re.compile(r"does not exist"), "something it needs does not exist on Proxmox"),
    (re.compile(r"Parameter verification failed|value does not look like|invalid", re.I), "Proxmox rejected a value"),
]


def _fail(step: str, plan: dict, vmid: int, exc: ProxmoxError) -> CreateError:
    kind = "VM" if plan["type"] == "qemu" else "CT"
    if isinstance(exc, ProxmoxUnreachable):
        reason = f"node {plan['node']} or the cluster is unreachable"
    else:
        reason = next((say for pattern, say in _REASONS if pattern.search(str(exc))), "")
    head = f"Could not create {kind} {vmid} ({plan['name']}): {step} failed"
    return CreateError(f"{head}: {reason}. Proxmox said: {exc}" if reason else f"{head}. Proxmox said: {exc}",
                       status=exc.status)


def _find(client, vmid: int) -> dict | None:
    """The guest with `vmid` as /cluster/resources lists it (one call), or None."""
    for item in client.get("cluster/resources", type="vm") or []:
        if str(item.get("vmid")) == str(vmid):
            return item
    return None


def _ours(operation: Operation, plan: dict, found: dict) -> bool:
    """A guest found under our vmid is ours if we started its create/clone task (UPID recorded) or,
    when we died before recording it, if type and name are the ones we asked for."""
    kinds = ("qmcreate", "vzcreate", "qmclone")
    if any(parse_upid(u).type in kinds for u in operation.upids or []):
        return True
    return found.get("type") == plan["type"] and (found.get("name") or "") == plan["name"]


def _wait(client, upid: str, reporter: OperationReporter) -> None:
    """Follow a clean-up task to its end (also once the operation is cancelled, unlike follow_upid)."""
    status = follow_task(client, parse_upid(upid).node, upid,
                         lambda n, text: reporter.event(text, level="debug"), poll=0.2)
    if not task_ok(status.get("exitstatus")):
        raise CreateError(f"clean-up task failed: {status.get('exitstatus')}")


def _remove(client, plan: dict, vmid: int, reporter: OperationReporter) -> None:
    """Delete the guest we created (stop it first, purge it from jobs/HA/pools, unreferenced disks too).
    Waits for a create/clone task that still holds the guest's lock (a cancelled one stops soon)."""
    reporter.event(f"Removing {vmid} from Proxmox so that nothing is left behind", level="warning")
    deadline = time.monotonic() + 120
    while True:
        found = _find(client, vmid)
        if found is None:
            reporter.event(f"Nothing of {vmid} is left on Proxmox", level="warning")
            return
        if not found.get("lock") or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    base = f"nodes/{found['node']}/{found['type']}/{vmid}"
    if found.get("status") == "running":
        _wait(client, client.post(f"{base}/status/stop"), reporter)
    _wait(client, client.delete(base, purge=1, **{"destroy-unreferenced-disks": 1}), reporter)
    reporter.event(f"Removed {vmid} from Proxmox", level="warning")


def _boot_disk(config: dict) -> tuple[str, int] | None:
    """(key, size in bytes) of the first real disk (scsi0, virtio0, sata0, ide0...) of a VM config."""
    for disk in guest_config.disks(config, "qemu"):
        if disk["media"] != "disk" or "cloudinit" in disk["volume"] or not disk["key"][-1].isdigit():
            continue
        if disk["key"].startswith(("efidisk", "tpmstate")):
            continue
        match = re.fullmatch(r"(\d+(?:\.\d+)?)([KMGT]?)", disk["size"] or "")
        size = int(float(match.group(1)) * {"": 1, "K": 1024, "M": MiB, "G": GiB, "T": 1024 * GiB}[match.group(2)]) \
            if match else 0
        return disk["key"], size
    return None


def _after_clone(operation, reporter, client, plan: dict, vmid: int) -> None:
    """Hardware and cloud-init settings (one config PUT), then grow the disk to the asked size."""
    base = f"nodes/{plan['node']}/qemu/{vmid}"
    settings = dict(plan["config"])
    current = client.get(f"{base}/config") or {}
    if plan.get("cloudinit") and not any("cloudinit" in str(v) for v in current.values()):
        boot = _boot_disk(current)
        storage = plan.get("storage") or (str(current.get(boot[0], "")).split(":", 1)[0] if boot else "")
        slot = next((k for k in ("ide0", "ide1", "ide3", "sata5") if k not in current), None)
        if storage and slot:
            settings[slot] = f"{storage}:cloudinit"
    try:
        client.put(f"{base}/config", **settings)
    except ProxmoxError as exc:
        raise _fail("applying the hardware and cloud-init settings", plan, vmid, exc) from exc
    reporter.event("Applied hardware and cloud-init settings", progress=_PROGRESS["config"])
    boot = _boot_disk(client.get(f"{base}/config") or {})
    if boot and plan["disk_size"] * GiB > boot[1]:
        try:
            upid = client.put(f"{base}/resize", disk=boot[0], size=f"{plan['disk_size']}G")
            if upid:
                follow_upid(operation, client, plan["node"], upid, reporter=reporter, progress_range=_PROGRESS["resize"])
        except ProxmoxError as exc:
            raise _fail(f"growing disk {boot[0]}", plan, vmid, exc) from exc
        reporter.event(f"Disk {boot[0]} grown to {plan['disk_size']} GiB", progress=_PROGRESS["resize"][1])


def sync_guest(client, cluster_id: int, vmid: int) -> Guest | None:
    """Targeted re-sync: read /cluster/resources once, upsert this guest's row (as the sync would),
    push it to the open pages and read its details, so it shows at once, not at the next cycle."""
    from apps.nodes.models import Node

    item = _find(client, vmid)
    if item is None:
        return None
    node_ids = dict(Node.objects.filter(cluster_id=cluster_id).values_list("name", "id"))
    want = guest_services._desired_guest(item, node_ids, timezone.now())
    try:
        with transaction.atomic():
            guest, _ = Guest.objects.update_or_create(cluster_id=cluster_id, vmid=vmid, defaults=want)
    except IntegrityError:  # the periodic sync inserted it between our read and write
        Guest.objects.filter(cluster_id=cluster_id, vmid=vmid).update(**want)
        guest = Guest.objects.get(cluster_id=cluster_id, vmid=vmid)
    guest_services.push_guests(cluster_id, [guest])
    try:
        guest = Guest.objects.select_related("node", "cluster").get(pk=guest.pk)
        guest_services.guest_refresh(guest=guest, client=client)
    except ProxmoxError as exc:  # details are a bonus; the page re-reads them
        logger.info("details of new guest %s: %s", vmid, exc)
    return guest


def _release(operation: Operation) -> None:
    VmidReservation.objects.filter(operation_id=operation.pk).delete()
    cache.delete(_secret_key(operation.pk))


def _finish_target(operation: Operation, guest: Guest) -> None:
    # From now on the guest page lists this operation among its own.
    Operation.objects.filter(pk=operation.pk).update(target_type="guests.guest", target_id=str(guest.pk),
                                                     target_repr=str(guest)[:200])


def run_create(operation: Operation, reporter: OperationReporter, *, plan: dict, vmid: int) -> dict:
    """Worker side of guest_create_vm/ct (see the module docstring for the guarantees)."""
    if not VmidReservation.objects.filter(operation_id=operation.pk, vmid=vmid).exists():
        raise CreateError(f"the reservation of VMID {vmid} is gone (the operation was cleaned up); nothing was done")
    kind = "VM" if plan["type"] == "qemu" else "CT"
    client = client_for(plan["cluster_id"])
    created = False
    try:
        found = _find(client, vmid)
        if found is not None:
            if not _ours(operation, plan, found):
                raise CreateError(f"Could not create {kind} {vmid} ({plan['name']}): VMID {vmid} was taken on Proxmox "
                                  f"outside the portal by '{found.get('name', '')}'; that guest was left alone")
            created = True
            reporter.event(f"{kind} {vmid} already exists on Proxmox (this run is a retry): not creating it again")
            if operation.current_upid and parse_upid(operation.current_upid).type in ("qmcreate", "vzcreate", "qmclone"):
                follow_upid(operation, client, None, operation.current_upid, reporter=reporter,
                            progress_range=_PROGRESS["create"])
        else:
            created = True  # from here a failure may have left something: clean-up checks Proxmox
            upid = _start(client, plan, vmid, operation)
            try:
                follow_upid(operation, client, None, upid, reporter=reporter, progress_range=_PROGRESS["create"])
            except CreateError:
                raise
            except ProxmoxError as exc:
                raise _fail("cloning the template" if plan["source"] == "template" else "creating it",
                            plan, vmid, exc) from exc
        reporter.event(f"{kind} {vmid} created on {plan['node']}", progress=_PROGRESS["create"][1])
        if plan["source"] == "template":
            _after_clone(operation, reporter, client, plan, vmid)
        if plan["start"]:
            _power_on(operation, reporter, client, plan, vmid)
        try:
            guest = sync_guest(client, plan["cluster_id"], vmid)
            reporter.event(f"{kind} {vmid} is in the inventory", progress=_PROGRESS["sync"])
        except Exception as exc:  # the guest is fine; never undo a good create over a read
            logger.warning("targeted sync of %s failed", vmid, exc_info=True)
            reporter.event(f"{kind} {vmid} will show at the next sync (reading it failed: {exc})", level="warning")
            guest = None
        with transaction.atomic():
            if guest is not None:
                _finish_target(operation, guest)
            _release(operation)
        return {"vmid": vmid, "node": plan["node"], "guest": guest.pk if guest else None}
    except BaseException:
        if created:
            try:
                _remove(client, plan, vmid, reporter)
            except Exception as cleanup_exc:  # keep the reservation: the janitor retries the clean-up
                logger.exception("clean-up of %s failed", vmid)
                reporter.event(f"Clean-up of {vmid} failed ({cleanup_exc}); it will be retried", level="error")
                raise
        _release(operation)
        raise
    finally:
        client.close()


def _start(client, plan: dict, vmid: int, operation: Operation) -> str:
    try:
        if plan["source"] == "template":
            return client.post(f"nodes/{plan['template_node']}/qemu/{plan['template_vmid']}/clone",
                               newid=vmid, **plan["clone"])
        params = dict(plan["create"], vmid=vmid)
        if plan["type"] == "lxc":
            token = cache.get(_secret_key(operation.pk))
            if plan.get("has_password"):
                if not token:
                    raise CreateError(f"the root password for CT {vmid} expired before a worker took the job; "
                                      "submit the form again")
                params["password"] = decrypt(token)
        return client.post(f"nodes/{plan['node']}/{plan['type']}", **params)
    except CreateError:
        raise
    except ProxmoxError as exc:
        raise _fail("cloning the template" if plan["source"] == "template" else "creating it", plan, vmid, exc) from exc


def _power_on(operation, reporter, client, plan: dict, vmid: int) -> None:
    try:
        upid = client.post(f"nodes/{plan['node']}/{plan['type']}/{vmid}/status/start")
        follow_upid(operation, client, plan["node"], upid, reporter=reporter, progress_range=_PROGRESS["start"])
    except ProxmoxError as exc:
        raise _fail("starting it", plan, vmid, exc) from exc
    reporter.event("Started", progress=_PROGRESS["start"][1])


def _stale(operation: Operation | None) -> bool:
    """Running, but no heartbeat for the reconciler's timeout: the worker that ran it is gone."""
    if operation is None or operation.status != OperationStatus.RUNNING:
        return False
    beat = operation.heartbeat_at
    return beat is None or (timezone.now() - beat).total_seconds() > heartbeat_timeout()


@shared_task(name="guests.guest_create")
def guest_create(operation_id: str, plan: dict, vmid: int) -> None:
    # A redelivered task whose first worker died resumes (run_create then finds its own guest).
    operation = Operation.objects.filter(pk=operation_id).first()
    run_operation(operation_id, lambda op, reporter: run_create(op, reporter, plan=plan, vmid=vmid),
                  reattach=_stale(operation))


@shared_task(name="guests.guest_create_cleanup")
def guest_create_cleanup(operation_id: str, attempt: int = 0) -> str:
    """Janitor for creates that ended without their worker (reconciler, cancel of a lost worker):
    succeeded -> sync the guest in; otherwise remove what we created. Then release the vmid."""
    operation = Operation.objects.filter(pk=operation_id).first()
    if operation is None or not VmidReservation.objects.filter(operation_id=operation_id).exists():
        return "nothing to do"
    beat = operation.heartbeat_at
    if beat and (timezone.now() - beat).total_seconds() < heartbeat_timeout() and attempt < 10:
        guest_create_cleanup.apply_async((operation_id, attempt + 1), countdown=heartbeat_timeout())
        return "a worker is still on it"
    plan, vmid = operation.task_kwargs["plan"], operation.task_kwargs["vmid"]
    reporter = OperationReporter(operation)
    client = client_for(plan["cluster_id"])
    try:
        found = _find(client, vmid)
        if operation.status == OperationStatus.SUCCEEDED:
            guest = sync_guest(client, plan["cluster_id"], vmid)
            if guest is not None:
                _finish_target(operation, guest)
        elif found is not None and _ours(operation, plan, found):
            _remove(client, plan, vmid, reporter)
        _release(operation)
        return "cleaned"
    finally:
        client.close()


@receiver(operation_finished, dispatch_uid="guests.create.finished")
def _on_finished(sender, operation: Operation, **kwargs) -> None:
    # Ended while its reservation is still held = ended without our worker's bookkeeping.
    if operation.kind == "guest.create" and VmidReservation.objects.filter(operation_id=operation.pk).exists():
        transaction.on_commit(lambda: guest_create_cleanup.apply_async(
            (str(operation.pk),), countdown=heartbeat_timeout()))


# -- API ------------------------------------------------------------------------------------------------


class _CreateCommon(serializers.Serializer):
    cluster = serializers.IntegerField(required=False, allow_null=True,
                                       help_text="Cluster id; may be left out when only one cluster is registered.")
    cores = serializers.IntegerField(required=False, help_text="vCPU cores (1-128)")
    memory = serializers.IntegerField(required=False, help_text="MiB")
    storage = serializers.CharField(required=False, allow_blank=True,
                                    help_text="Storage id for the disk/rootfs (must hold images resp. rootdir)")
    disk_size = serializers.IntegerField(required=False, help_text="GiB")
    bridge = serializers.CharField(required=False, help_text="e.g. vmbr0")
    vlan = serializers.IntegerField(required=False, allow_null=True, help_text="VLAN tag 1-4094")
    firewall = serializers.BooleanField(required=False)
    ip_mode = serializers.ChoiceField(["dhcp", "static"], required=False)
    ip = serializers.CharField(required=False, allow_blank=True, help_text="static: IPv4/prefix, e.g. 10.0.0.5/24")
    gateway = serializers.CharField(required=False, allow_blank=True)
    nameservers = serializers.CharField(required=False, allow_blank=True, help_text="IP addresses, space-separated")
    searchdomain = serializers.CharField(required=False, allow_blank=True)
    ssh_keys = serializers.CharField(required=False, allow_blank=True, help_text="OpenSSH public keys, one per line")
    node = serializers.CharField(required=False, allow_blank=True,
                                 help_text="Node name; empty = the online node with the most free memory that "
                                           "has the storage")
    tags = serializers.ListField(child=serializers.CharField(), required=False)
    pool = serializers.CharField(required=False, allow_blank=True)
    start = serializers.BooleanField(required=False, help_text="Start it once created")


class CreateVmSerializer(_CreateCommon):
    source = serializers.ChoiceField(["iso", "template"], help_text="iso: empty disk + CD-ROM; template: clone")
    iso = serializers.CharField(required=False, allow_blank=True, help_text="ISO volid, e.g. local:iso/debian.iso")
    template = serializers.IntegerField(required=False, allow_null=True, help_text="VMID of a VM template")
    clone = serializers.ChoiceField(["linked", "full"], required=False)
    name = serializers.CharField()
    ostype = serializers.ChoiceField([k for k, _ in VM_OSTYPES], required=False)
    cloudinit = serializers.BooleanField(required=False, allow_null=True, default=None,
                                         help_text="Add cloud-init settings (default: yes for templates)")
    ci_user = serializers.CharField(required=False, allow_blank=True)


class CreateCtSerializer(_CreateCommon):
    ostemplate = serializers.CharField(help_text="CT template volid, e.g. local:vztmpl/debian-12-standard.tar.zst")
    hostname = serializers.CharField()
    password = serializers.CharField(required=False, allow_blank=True, write_only=True,
                                     style={"input_type": "password"}, help_text="root password (or ssh_keys)")
    unprivileged = serializers.BooleanField(required=False, default=True)
    nesting = serializers.BooleanField(required=False)
    swap = serializers.IntegerField(required=False, help_text="MiB")


class _CreateApi(GenericAPIView):
    permission_classes = [IsAuthenticated]
    serializer_class: type[serializers.Serializer]
    service = None
    what = ""

    def post(self, request):
        body = self.serializer_class(data=request.data)
        body.is_valid(raise_exception=True)
        try:
            operation = type(self).service(user=request.user, data=body.validated_data)
        except PermissionDenied as exc:
            audit_log(user=request.user, action="guests.guest_create", target=self.what, result=AuditResult.DENIED,
                      request=request)
            raise exceptions.PermissionDenied(str(exc))
        audit_log(user=request.user, action="guests.guest_create", target=operation.target_repr,
                  result=AuditResult.ACCEPTED, request=request, detail={"operation": str(operation.pk)})
        return Response(OperationSerializer(operation, context={"request": request}).data,
                        status=status.HTTP_202_ACCEPTED)


class GuestCreateVmApi(_CreateApi):
    """Create a VM from an ISO image or by cloning a template. 400 with field errors when the
    request does not fit the inventory; 202 with the operation otherwise."""

    serializer_class = CreateVmSerializer
    service = staticmethod(guest_create_vm)
    what = "VM"

    @extend_schema(request=CreateVmSerializer, responses={202: OperationSerializer}, summary="Create a VM")
    def post(self, request):
        return super().post(request)


class GuestCreateCtApi(_CreateApi):
    """Create a container from a CT template (vztmpl). 400 with field errors, or 202 with the operation."""

    serializer_class = CreateCtSerializer
    service = staticmethod(guest_create_ct)
    what = "CT"

    @extend_schema(request=CreateCtSerializer, responses={202: OperationSerializer}, summary="Create a container")
    def post(self, request):
        return super().post(request)


api_urlpatterns = [
    path("guests/create-vm/", GuestCreateVmApi.as_view(), name="guest-create-vm"),
    path("guests/create-ct/", GuestCreateCtApi.as_view(), name="guest-create-ct"),
]


# -- UI: the wizard ---------------------------------------------------------------------------------
# One <form> holds every step (inactive steps are hidden, their inputs still post), so "Back" loses
# nothing. Each "Next" re-plans on the server and shows the earliest step that has an error.

VM_STEPS = [
    ("source", "Source", ["cluster", "source", "iso", "template", "clone"]),
    ("hardware", "Hardware", ["name", "cores", "memory", "storage", "disk_size", "bridge", "vlan", "firewall",
                              "ostype"]),
    ("cloudinit", "Cloud-init", ["cloudinit", "ci_user", "ssh_keys", "ip_mode", "ip", "gateway", "nameservers",
                                 "searchdomain"]),
    ("placement", "Placement", ["node"]),
    ("review", "Review", ["tags", "pool", "start"]),
]
CT_STEPS = [
    ("source", "Template", ["cluster", "ostemplate"]),
    ("hardware", "Resources", ["hostname", "cores", "memory", "swap", "storage", "disk_size", "unprivileged",
                               "nesting"]),
    ("access", "Network & access", ["bridge", "vlan", "firewall", "ip_mode", "ip", "gateway", "nameservers",
                                    "searchdomain", "password", "ssh_keys"]),
    ("placement", "Placement", ["node"]),
    ("review", "Review", ["tags", "pool", "start"]),
]
_IP_MODES = [("dhcp", "DHCP"), ("static", "Static")]


def _storage_choices(user, content: str) -> list[tuple[str, str]]:
    """One choice per storage id holding `content`: shared (with free space) or local (its nodes)."""
    by_name: dict[str, list] = {}
    for row in storage_list(user=user).filter(content__contains=[content]).order_by("storage", "node__name"):
        by_name.setdefault(row.storage, []).append(row)
    out = [("", "— choose —")]
    for name, rows in by_name.items():
        if rows[0].shared:
            label = f"{name} — shared, {_gib(_free(rows[0]) or 0)} free"
        else:
            label = f"{name} — local on {', '.join(r.node.name for r in rows if r.node_id)}"
        out.append((name, label))
    return out


def _volume_choices(user, content: str) -> list[tuple[str, str]]:
    seen: dict[str, str] = {}
    for item in storage_content_list(user=user).filter(content=content).order_by("volid"):
        seen.setdefault(item.volid, f"{item.filename} ({item.storage.storage}, {_gib(item.size)})")
    return [("", "— choose —")] + list(seen.items())


def _node_choices(user) -> list[tuple[str, str]]:
    out = [("", "Automatic — the online node with the most free memory")]
    for node in node_list(user=user).order_by("name"):
        state = "" if node.status == NodeStatus.ONLINE else f" — {node.get_status_display().lower()}"
        out.append((node.name, f"{node.name}: {_gib(max(0, node.maxmem - node.mem))} memory free, "
                               f"{node.maxcpu} CPUs{state}"))
    return out


def known_bridges(user, limit: int = 500) -> list[str]:
    """Bridges seen in the cached guest configs (the inventory has no node network list), vmbr0 first."""
    found = {"vmbr0"}
    for config in guest_list(user=user).exclude(config={}).values_list("config", flat=True)[:limit]:
        for key, value in (config or {}).items():
            if re.fullmatch(r"net\d+", key):
                match = re.search(r"bridge=([^,]+)", str(value))
                if match:
                    found.add(match.group(1))
    return sorted(found, key=lambda b: (b != "vmbr0", b))


class _WizardForm(forms.Form):
    """Types only: every range and inventory check is the service's (plan_vm / plan_ct)."""

    cluster = forms.ChoiceField(required=False)
    cores = forms.IntegerField(required=False, label="CPU cores")
    memory = forms.IntegerField(required=False, label="Memory (MiB)")
    storage = forms.ChoiceField(required=False)
    disk_size = forms.IntegerField(required=False, label="Disk size (GiB)")
    bridge = forms.CharField(required=False, label="Bridge")
    vlan = forms.IntegerField(required=False, label="VLAN tag", help_text="empty = untagged")
    firewall = forms.BooleanField(required=False, label="Proxmox firewall on this interface")
    ip_mode = forms.ChoiceField(choices=_IP_MODES, required=False, widget=forms.RadioSelect, label="IPv4")
    ip = forms.CharField(required=False, label="Address / prefix", widget=forms.TextInput(attrs={"placeholder": "192.168.10.20/24"}))
    gateway = forms.CharField(required=False, label="Gateway", widget=forms.TextInput(attrs={"placeholder": "192.168.10.1"}))
    nameservers = forms.CharField(required=False, label="DNS servers", help_text="space-separated; empty = the host's")
    searchdomain = forms.CharField(required=False, label="Search domain")
    ssh_keys = forms.CharField(required=False, label="SSH public keys", widget=forms.Textarea(attrs={
        "rows": 3, "placeholder": "ssh-ed25519 AAAA... you@laptop"}), help_text="one OpenSSH public key per line")
    node = forms.ChoiceField(required=False, label="Node")
    tags = forms.CharField(required=False, label="Tags", help_text="separated by ; or spaces")
    pool = forms.CharField(required=False, label="Pool")
    start = forms.BooleanField(required=False, label="Start after creation")
    content = "images"

    def __init__(self, *args, user, **kwargs):
        super().__init__(*args, **kwargs)
        clusters = list(cluster_list(user=user))
        self.fields["cluster"].choices = [(str(c.pk), c.name) for c in clusters]
        self.single_cluster = len(clusters) <= 1
        self.fields["storage"].choices = _storage_choices(user, self.content)
        self.fields["node"].choices = _node_choices(user)
        self.bridges = known_bridges(user)
        self.fields["bridge"].widget.attrs["list"] = "bridge-list"
        self.fields["pool"].widget.attrs["list"] = "pool-list"
        self.pools = sorted(set(guest_list(user=user).exclude(pool="").values_list("pool", flat=True)))

    def data_for_service(self) -> dict:
        self.is_valid()
        data = {k: v for k, v in self.cleaned_data.items() if k in self.fields}
        if not data.get("cluster") and self.single_cluster:
            data["cluster"] = None
        return data


class VmWizardForm(_WizardForm):
    source = forms.ChoiceField(choices=[("iso", "Install from an ISO image"), ("template", "Clone a template")],
                               widget=forms.RadioSelect, required=False)
    iso = forms.ChoiceField(required=False, label="ISO image")
    template = forms.ChoiceField(required=False, label="VM template")
    clone = forms.ChoiceField(choices=[("linked", "Linked clone — instant, shares the template's disk"),
                                       ("full", "Full clone — an independent copy")],
                              widget=forms.RadioSelect, required=False, label="Clone mode")
    name = forms.CharField(required=False, label="Name", widget=forms.TextInput(attrs={"placeholder": "web-01"}))
    ostype = forms.ChoiceField(choices=VM_OSTYPES, required=False, label="Guest OS")
    cloudinit = forms.BooleanField(required=False, label="Configure the guest with cloud-init")
    ci_user = forms.CharField(required=False, label="User", widget=forms.TextInput(attrs={"placeholder": "debian"}))

    def __init__(self, *args, user, **kwargs):
        super().__init__(*args, user=user, **kwargs)
        self.fields["iso"].choices = _volume_choices(user, "iso")
        templates = guest_list(user=user).filter(template=True, type=GuestType.QEMU).order_by("vmid")
        self.fields["template"].choices = [("", "— choose —")] + [
            (str(t.vmid), f"{t.vmid} {t.name} (on {t.node.name if t.node_id else '?'}, {_gib(t.maxdisk)} disk)")
            for t in templates]

    def data_for_service(self) -> dict:
        data = super().data_for_service()
        data["template"] = int(data["template"]) if str(data.get("template") or "").isdigit() else None
        return data


class CtWizardForm(_WizardForm):
    content = "rootdir"
    ostemplate = forms.ChoiceField(required=False, label="CT template")
    hostname = forms.CharField(required=False, label="Hostname", widget=forms.TextInput(attrs={"placeholder": "dns-02"}))
    swap = forms.IntegerField(required=False, label="Swap (MiB)")
    unprivileged = forms.BooleanField(required=False, label="Unprivileged container (recommended)")
    nesting = forms.BooleanField(required=False, label="Nesting (run containers or systemd services inside)")
    password = forms.CharField(required=False, label="Root password",
                               widget=forms.PasswordInput(render_value=True, attrs={"autocomplete": "new-password"}),
                               help_text=f"at least {PASSWORD_MIN} characters; or give SSH keys")

    def __init__(self, *args, user, **kwargs):
        super().__init__(*args, user=user, **kwargs)
        self.fields["ostemplate"].choices = _volume_choices(user, "vztmpl")


def _review(plan: dict) -> list[tuple[str, str]]:
    """What the review step shows, from the plan (what will be sent to Proxmox)."""
    kind = "VM" if plan["type"] == "qemu" else "Container"
    spec = plan.get("create") or plan.get("config") or {}
    rows = [("Type", kind), ("Name", plan["name"])]
    if plan["source"] == "iso":
        rows.append(("Source", f"ISO {plan['iso']}"))
    elif plan["source"] == "template":
        rows.append(("Source", f"{plan['clone_mode']} clone of template {plan['template_vmid']} "
                               f"({plan['template_name']}) on {plan['template_node']}"))
    else:
        rows.append(("Source", f"CT template {spec['ostemplate']}"))
    rows.append(("CPU / memory", f"{spec.get('cores')} cores, {spec.get('memory')} MiB"
                 + (f", swap {spec['swap']} MiB" if "swap" in spec else "")))
    rows.append(("Disk", f"{plan['disk_size']} GiB on {plan['storage'] or 'the template storage'}"))
    rows.append(("Network", spec.get("net0", "")))
    if plan["type"] == "qemu" and plan.get("cloudinit"):
        ci = [f"user {spec['ciuser']}" if spec.get("ciuser") else "", spec.get("ipconfig0", ""),
              "SSH keys" if spec.get("sshkeys") else "", f"DNS {spec['nameserver']}" if spec.get("nameserver") else ""]
        rows.append(("Cloud-init", ", ".join(c for c in ci if c)))
    if plan["type"] == "lxc":
        rows.append(("Options", ", ".join(["unprivileged" if spec.get("unprivileged") else "privileged"]
                                          + (["nesting"] if spec.get("features") else []))))
    rows.append(("Node", f"{plan['node']} ({plan['placement']})"))
    return rows


def _partial(request, template: str, context: dict, status_code: int = 200):
    response = render(request, template, context, status=status_code)
    patch_vary_headers(response, ("HX-Request",))
    return response


class GuestCreateWizardView(LoginRequiredMixin, View):
    """GET: the wizard at its first step. POST `_nav` = next | back | goto:<step> | create: re-plan
    on the server; create queues the operation and answers its live progress panel."""

    kind = "vm"

    @property
    def spec(self):
        if self.kind == "vm":
            return VmWizardForm, VM_STEPS, plan_vm, guest_create_vm, DEFAULTS
        return CtWizardForm, CT_STEPS, plan_ct, guest_create_ct, CT_DEFAULTS

    def _render(self, request, form, steps, step, errors=None, plan=None):
        names = [s[0] for s in steps]
        index = names.index(step)
        shown = {f for _, _, fields in steps[:index + 1] for f in fields}
        for field, messages in (errors or {}).items():
            target = field if field in form.fields and field in shown else None
            if field in form.fields and field not in shown:
                continue
            for message in messages:
                form.add_error(target, message if target else f"{field}: {message}")
        context = {"form": form, "steps": steps, "step": step, "step_index": index, "kind": self.kind,
                   "review": _review(plan) if plan and step == "review" else None,
                   "title": "Create a VM" if self.kind == "vm" else "Create a container"}
        is_htmx = request.headers.get("HX-Request") == "true"
        return _partial(request, "guests/create/partials/wizard.html" if is_htmx else "guests/create/wizard.html",
                        context)

    def get(self, request):
        if not is_operator(request.user):
            raise PermissionDenied("only operators may create guests until tenancy exists")
        form_class, steps, _, _, defaults = self.spec
        initial = {**defaults, "cloudinit": False}
        form = form_class(user=request.user, initial=initial)
        return self._render(request, form, steps, "source")

    def post(self, request):
        if not is_operator(request.user):
            raise PermissionDenied("only operators may create guests until tenancy exists")
        form_class, steps, plan_fn, create_fn, _ = self.spec
        names = [s[0] for s in steps]
        step = request.POST.get("_step") if request.POST.get("_step") in names else names[0]
        nav = request.POST.get("_nav", "next")
        form = form_class(request.POST, user=request.user)
        data = form.data_for_service()
        type_errors = {f: list(m) for f, m in form.errors.items()}
        form = form_class(request.POST, user=request.user)  # fresh: errors are added per step below
        plan, errors = plan_fn(user=request.user, data=data)
        for field, messages in type_errors.items():
            errors.setdefault(field, []).extend(messages)
        index = names.index(step)
        if nav == "back":
            return self._render(request, form, steps, names[max(0, index - 1)])
        if nav.startswith("goto:") and nav[5:] in names[:index]:
            return self._render(request, form, steps, nav[5:])
        upto = len(names) if nav == "create" else index + 1
        bad = [i for i, (_, _, fields) in enumerate(steps[:upto]) if any(f in errors for f in fields)]
        if bad or (nav == "create" and errors):
            return self._render(request, form, steps, names[bad[0]] if bad else step, errors)
        if nav != "create":
            # The next step starts clean: its errors show once the user has had a go at it.
            return self._render(request, form, steps, names[min(index + 1, len(names) - 1)], None, plan)
        try:
            operation = create_fn(user=request.user, data=data)
        except ValidationError as exc:  # e.g. no free vmid / cluster unreachable at submit time
            return self._render(request, form, steps, step, exc.message_dict, plan)
        audit_log(user=request.user, action="guests.guest_create", target=operation.target_repr,
                  result=AuditResult.ACCEPTED, request=request, detail={"operation": str(operation.pk)})
        return _partial(request, "guests/create/partials/submitted.html",
                        {**progress_context(operation), "plan": plan, "kind": self.kind})


urlpatterns = [
    path("guests/create/vm/", GuestCreateWizardView.as_view(kind="vm"), name="guest_create_vm"),
    path("guests/create/ct/", GuestCreateWizardView.as_view(kind="ct"), name="guest_create_ct"),
]
