"""Clone checks: name, target node, storage and pool against the inventory, no Proxmox call."""

from __future__ import annotations

import re

from django.core.exceptions import ValidationError

from ... import config as guest_config
from ...choices import GuestType
from ...models import Guest, VmidReservation


DNS_NAME_RE = re.compile(r"^(?=.{1,63}$)[a-zA-Z0-9]([a-zA-Z0-9-]*[a-zA-Z0-9])?(\.[a-zA-Z0-9]([a-zA-Z0-9-]*[a-zA-Z0-9])?)*$")
POOL_RE = re.compile(r"^[A-Za-z0-9_\-]+$")


def storages_on(guest: Guest, node: str) -> dict[str, bool]:
    """Storage ids usable for this guest type on `node` -> shared?"""
    from apps.storage.models import Storage

    content = "images" if guest.type == GuestType.QEMU else "rootdir"
    return dict(Storage.objects.filter(cluster_id=guest.cluster_id, nodes__contains=[node],
                                       content__contains=[content]).values_list("storage", "shared"))


def _disk_storages(guest: Guest) -> set[str]:
    return {d["volume"].split(":", 1)[0] for d in guest_config.disks(guest.config or {}, guest.type)
            if ":" in d["volume"] and d["media"] != "cdrom"}


def node_names(guest: Guest) -> list[str]:
    from apps.nodes.models import Node

    return list(Node.objects.filter(cluster_id=guest.cluster_id).order_by("name").values_list("name", flat=True))


def plan_clone(guest: Guest, *, name: str = "", target: str = "", storage: str = "", pool: str = "",
               full: bool | None = None, newid: int | None = None, description: str = "") -> dict:
    """Check the clone request against what we know; returns Proxmox's clone parameters (without
    newid). Raises ValidationError with every field's reason."""
    errors: dict[str, list[str]] = {}

    def err(key, message):
        errors.setdefault(key, []).append(message)

    name = (name or "").strip()
    if name and not DNS_NAME_RE.match(name):
        err("name", "a DNS name: letters, digits and -, dot-separated parts, at most 63 characters")
    if full is None:
        full = not guest.template  # Proxmox's default: linked from templates, full otherwise
    if not full and not guest.template:
        err("full", "only templates can be cloned linked; a normal guest is always copied in full")
    target = (target or "").strip() or guest.node.name
    if target not in node_names(guest):
        err("target", f"no node '{target}' in cluster {guest.cluster}")
    storage = (storage or "").strip()
    if storage and not full:
        err("storage", "a linked clone stays on the template's storage; leave it empty or clone in full")
    usable = storages_on(guest, target)
    if storage and storage not in usable:
        err("storage", f"'{storage}' cannot hold {'VM disks' if guest.type == GuestType.QEMU else 'container volumes'} "
            f"on {target}; one of: {', '.join(sorted(usable)) or 'none'}")
    if target != guest.node.name and "target" not in errors:
        local = [s for s in _disk_storages(guest) if not storages_on(guest, guest.node.name).get(s, True)]
        if local and not (storage and usable.get(storage)):
            err("target", f"its disks are on local storage ({', '.join(sorted(local))}); clone on {guest.node.name} "
                "or give a shared target storage")
    pool = (pool or "").strip()
    if pool and not POOL_RE.match(pool):
        err("pool", "a pool name: letters, digits, _ and -")
    if newid is not None:
        if not 100 <= int(newid) <= 999_999_999:
            err("newid", "a VMID is between 100 and 999999999")
        elif Guest.objects.filter(cluster_id=guest.cluster_id, vmid=newid).exists() or \
                VmidReservation.objects.filter(cluster_id=guest.cluster_id, vmid=newid).exists():
            err("newid", f"VMID {newid} is already used or reserved")
    if errors:
        raise ValidationError(errors)
    params = {"full": 1 if full else 0, "target": target if target != guest.node.name else None,
              "storage": storage or None, "pool": pool or None, "description": description or None}
    params["name" if guest.type == GuestType.QEMU else "hostname"] = name or None
    return params
