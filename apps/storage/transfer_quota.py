"""Uploads and downloads against the tenant's disk quota (apps.permissions.quotas).

A tenant user's upload reserves its size in the transaction that creates the operation; a
download's size is known only once Proxmox has fetched it, so its request needs room left (it holds
one byte while it runs). Once stored, the file is the tenant's (TenantFile) and uses its disk quota
at the size the storage's content list reports, until it is no longer listed (deleted). Operators'
transfers (no tenant) count against nothing."""

from __future__ import annotations

from django.core.exceptions import ValidationError
from django.db.models import Exists, OuterRef, Sum

from apps.permissions import quotas
from apps.permissions.choices import QuotaResource
from apps.permissions.models import TenantFile

from .models import StorageContent

DISK = QuotaResource.DISK


def files_disk(tenant) -> int:
    """Bytes of the files `tenant` stored that the storages still list."""
    own = TenantFile.objects.filter(tenant=tenant, storage_id=OuterRef("storage_id"), volid=OuterRef("volid"))
    return int(StorageContent.objects.filter(Exists(own)).aggregate(total=Sum("size"))["total"] or 0)


def register() -> None:
    quotas.register_more_usage(DISK, files_disk)


def reserve_upload(operation, size: int) -> None:
    """In the operation's transaction: hold `size` bytes of its tenant's disk (QuotaExceeded on `file`)."""
    if operation.tenant_id is not None:
        quotas.quota_reserve(tenant=operation.tenant_id, operation_id=operation.pk, amounts={DISK: size},
                             fields={DISK: "file"})


def reserve_download(operation) -> None:
    """In the operation's transaction: refuse (on `url`) when the tenant's disk quota has no room left."""
    if operation.tenant_id is None:
        return
    try:
        quotas.quota_reserve(tenant=operation.tenant_id, operation_id=operation.pk, amounts={DISK: 1},
                             fields={DISK: "url"})
    except quotas.QuotaExceeded as exc:
        item = exc.exceeded[0]
        text = lambda n: quotas.amount_text(DISK, n)
        raise ValidationError({"url": [(
            f"quota '{quotas.label(DISK)}' of tenant {item.tenant.slug} is full: limit {text(item.limit)}, "
            f"used {text(item.used)}, reserved {text(item.reserved)}; free some space before downloading")]}) from exc


def record(operation, storage, volid: str) -> None:
    """The transfer succeeded: the file is the operation's tenant's (none for operators)."""
    if operation.tenant_id is not None:
        TenantFile.objects.update_or_create(storage_id=storage.pk, volid=volid,
                                            defaults={"tenant_id": operation.tenant_id,
                                                      "operation_id": operation.pk})
