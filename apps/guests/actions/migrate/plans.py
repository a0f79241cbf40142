"""Where a guest may migrate: Proxmox's precheck (`GET .../migrate`) plus the portal's view of which
nodes are online, every refused node with its reasons in words."""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field

from django.core.exceptions import ValidationError

from apps.core.units import binary_size
from apps.operations.clients import client_for
from apps.permissions.policy import check
from apps.proxmox import borrowed
from apps.proxmox import guests as pve_guests

from ... import config as guest_config
from ...choices import GuestType
from ...models import Guest
from . import extensions


@dataclass
class MigrateTarget:
    node: str
    allowed: bool
    online: bool
    reasons: list[str] = field(default_factory=list)


@dataclass
class MigratePlan:
    """What a migration of one guest would do and where it may go."""

    guest_id: int
    source: str
    running: bool
    mode: str  # live | restart | offline
    mode_text: str
    targets: list[MigrateTarget]
    blockers: list[str]  # reasons that refuse every node
    notes: list[str]
    local_disks: list[dict]
    disk_bytes: int

    @property
    def allowed(self) -> list[MigrateTarget]:
        return [t for t in self.targets if t.allowed]

    def target(self, node: str) -> MigrateTarget | None:
        return next((t for t in self.targets if t.node == node), None)

    def as_dict(self) -> dict:
        return asdict(self)


def _node_reasons(reasons: dict, mapped_info: dict) -> list[str]:
    out = []
    for key, value in (reasons or {}).items():
        items = value if isinstance(value, list) else [value]
        if key == "unavailable_storages":
            out.append(f"storage {', '.join(map(str, items))} is not available there")
        elif key == "unavailable-resources":
            named = [f"{d} ({mapped_info[d]['name']})" if isinstance(mapped_info.get(d), dict) and
                     mapped_info[d].get("name") else str(d) for d in items]
            out.append(f"mapped device {', '.join(named)} has no mapping there")
        elif key in ("blocking-ha-resources", "blocking-resources"):
            sids = [i.get("sid", str(i)) if isinstance(i, dict) else str(i) for i in items]
            out.append(f"HA rules keep it apart from {', '.join(sids)}")
        else:
            out.append(f"{key}: {', '.join(map(str, items))}")
    return out


def _config_disk_bytes(guest: Guest) -> int:
    """Sizes of a container's volumes from its cached config (the LXC precheck has no local_disks)."""
    total = 0
    for disk in guest_config.disks(guest.config or {}, guest.type):
        match = re.fullmatch(r"(\d+(?:\.\d+)?)([KMGT]?)", disk["size"] or "")
        if match:
            total += int(float(match.group(1)) * 1024 ** " KMGT".index(match.group(2) or " "))
    return total


def migrate_plan(*, guest: Guest, user, client=None) -> MigratePlan:
    """Ask Proxmox's precheck where `guest` may migrate and explain every refused node.

    One Proxmox call. Raises PermissionDenied, ValidationError (node unknown) or ProxmoxError
    (e.g. `VM is locked (backup)`, no quorum, node unreachable) with Proxmox's message."""
    check(user, "guest.migrate", guest)
    if guest.node_id is None:
        raise ValidationError({"node": [f"the node of {guest} is not known yet; wait for the next sync"]})
    return _plan(guest, client)


def _plan(guest: Guest, client=None) -> MigratePlan:
    from apps.nodes.models import Node

    with borrowed(client, lambda: client_for(guest.cluster_id)) as client:
        check = pve_guests.migrate_precheck(client, guest.ref, pve_version=guest.node.pve_version)
    refused = check.not_allowed_nodes
    mapped_info = check.mapped_resource_info
    running = guest.is_running if check.running is None else check.running
    source = guest.node.name

    blockers, notes = [], []
    local_resources = check.local_resources
    if local_resources:
        mapped = set(check.mapped_resources)
        if running and set(local_resources) <= mapped:
            blockers.append(f"it is running with mapped device {', '.join(local_resources)}, which cannot move "
                            "while running; shut it down to migrate it offline")
        else:
            blockers.append(f"it uses devices that exist only on {source} ({', '.join(local_resources)})")
    local_disks = check.local_disks
    for disk in local_disks:
        if int(disk.get("cdrom") or 0):
            blockers.append(f"the local CD-ROM image {disk['volid']} is inserted; eject it first")
    copied = [d for d in local_disks if not int(d.get("cdrom") or 0)]
    disk_bytes = sum(int(d.get("size") or 0) for d in copied)
    if copied:
        notes.append("Local disks are copied to the target: " + ", ".join(
            f"{d['volid']} ({binary_size(d.get('size') or 0)})" for d in copied))
    if guest.type == GuestType.LXC:
        disk_bytes = _config_disk_bytes(guest)

    if guest.type == GuestType.QEMU:
        mode, text = ("live", "Live migration: the VM keeps running while its memory is copied.") if running else \
            ("offline", "Offline migration: the VM is stopped, only its configuration and local disks move.")
    else:
        mode, text = ("restart", "Restart mode: the container is shut down, moved, and started again on the "
                                 "target (a short outage).") if running else \
            ("offline", "Offline migration: the container is stopped, only its configuration and volumes move.")

    online = {n.name: n.online and n.status == "online"
              for n in Node.objects.filter(cluster_id=guest.cluster_id).only("name", "online", "status")}
    # Proxmox does not always name the targets (see MigrationPrecheck): then every online node is
    # offered, and Proxmox's answer to the migrate call itself is the final word.
    allowed = set(check.allowed_nodes) if check.allowed_nodes is not None else {n for n, up in online.items() if up}
    names = sorted((set(online) | allowed | set(refused)) - {source})
    extra = extensions.refusals(guest=guest, running=running, nodes=names)  # e.g. a free GPU there
    blockers += extra.blockers
    targets = []
    for name in names:
        reasons = _node_reasons(refused.get(name), mapped_info)
        if not online.get(name, True):
            reasons.insert(0, "the node is offline")
        if name not in allowed and not reasons:
            reasons.append("Proxmox does not offer it as a target")
        reasons += extra.nodes.get(name, []) + blockers
        targets.append(MigrateTarget(node=name, allowed=not reasons, online=online.get(name, True), reasons=reasons))
    return MigratePlan(guest_id=guest.pk, source=source, running=running, mode=mode, mode_text=text,
                       targets=targets, blockers=blockers, notes=notes, local_disks=local_disks,
                       disk_bytes=disk_bytes)
