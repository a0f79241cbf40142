"""Checks shared by back up now, restore and delete: which storages fit, which archive a volid holds
(vzdump's options and the operator check live in backup_jobs.validation, which both use)."""

from __future__ import annotations

import re

from django.core.exceptions import ValidationError

from apps.storage.models import Storage

from ...choices import GuestType
from ...models import Guest


def _field(name: str, message: str) -> ValidationError:
    return ValidationError({name: [message]})


def _messages(exc: ValidationError) -> str:
    return "; ".join(m for msgs in exc.message_dict.values() for m in msgs)


def _archive_type(volid: str) -> str | None:
    match = re.search(r"vzdump-(qemu|lxc)-\d+-", volid)
    return match.group(1) if match else None


def backup_storages(*, guest: Guest) -> list[Storage]:
    """Storages of the guest's cluster that hold backups and are reachable from its node."""
    if guest.node_id is None:
        return []
    rows = Storage.objects.filter(cluster_id=guest.cluster_id, content__contains=["backup"]).select_related("node")
    return [s for s in rows if s.node_id == guest.node_id or (s.node_id is None and guest.node.name in s.nodes)]


def _disk_storages(guest: Guest) -> list[Storage]:
    """Storages a restore of `guest` may write its disks to on its node."""
    need = "images" if guest.type == GuestType.QEMU else "rootdir"
    rows = Storage.objects.filter(cluster_id=guest.cluster_id, content__contains=[need]).select_related("node")
    return [s for s in rows if s.node_id == guest.node_id or (s.node_id is None and guest.node.name in s.nodes)]
