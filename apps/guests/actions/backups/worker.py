"""What the Celery tasks `guests.guest_backup`, `guests.guest_restore`, `guests.backup_delete` run."""

from __future__ import annotations

from celery import shared_task
from django.db import transaction

from apps.operations.clients import client_for
from apps.operations.models import Operation
from apps.operations.services import OperationReporter, follow_upid, run_operation
from apps.proxmox import ProxmoxError, ProxmoxTaskError
from apps.proxmox import guests as pve_guests
from apps.proxmox import storage as pve_storage
from apps.proxmox import tasklog
from apps.storage.models import Storage, StorageContent

from ... import services
from ...models import Guest
from ..create import sync_guest
from .validation import backup_storages


def _refresh_content(storage: Storage, client, reporter: OperationReporter) -> None:
    from apps.storage.services import storage_content_refresh

    try:
        storage_content_refresh(storage=storage, client=client)
        reporter.event(f"Backup list of {storage.storage} refreshed")
    except ProxmoxError as exc:  # the action itself succeeded; the list catches up at the next refresh
        reporter.event(f"Could not refresh the backup list of {storage.storage}: {exc}", level="warning")


def _error_lines(operation: Operation) -> list[str]:
    return list(operation.events.filter(level="error").order_by("seq").values_list("message", flat=True))


def run_backup(operation, reporter, *, guest_id: int, storage: str, mode: str, compress: str, notes: str = "",
               protected: bool = False) -> dict:
    """Worker side of guest_backup: vzdump, followed with its `INFO:  45% (...)` percentages,
    then the storage's content re-read so the new backup is listed."""
    guest = Guest.objects.select_related("node", "cluster").get(pk=guest_id)
    client = client_for(guest.cluster_id)
    params = {"storage": storage, "mode": mode, "compress": compress,
              "notes-template": notes or None, "protected": True if protected else None}
    try:
        with services.explained(guest, "back up"):
            upid = pve_guests.backup(client, guest.node.name, guest.vmid, **params)
        try:
            follow_upid(operation, client, guest.node.name, upid, reporter=reporter, progress_range=(0, 95))
        except ProxmoxTaskError as exc:
            detail = tasklog.backup_error(_error_lines(operation))
            message = services.explain_error("back up", guest, ProxmoxError(detail) if detail else exc)
            raise services.GuestActionError(message + (f" (task: {exc.message})" if detail else ""),
                                            status=exc.status) from exc
        row = next((s for s in backup_storages(guest=guest) if s.storage == storage), None)
        if row is not None:
            _refresh_content(row, client, reporter)
        newest = StorageContent.objects.filter(storage__cluster_id=guest.cluster_id, storage__storage=storage,
                                               content="backup", vmid=guest.vmid).order_by("-ctime").first()
        services._status_update(guest, client)
        return {"volid": newest.volid if newest else None, "storage": storage}
    finally:
        client.close()


def run_restore(operation, reporter, *, guest_id: int, volid: str, node: str, target: str, vmid: int,
                storage: str | None = None, start: bool = False, storage_id: int | None = None,
                pool: str | None = None) -> dict:
    """Worker side of guest_restore: qmrestore/vzrestore with its percentage, then the guest row
    re-read (same) or the new guest synced in on its own (new)."""
    guest = Guest.objects.select_related("node", "cluster").get(pk=guest_id)
    client = client_for(guest.cluster_id)
    params = {"storage": storage, "start": True if start else None,
              "force": True if target == "same" else None, "unique": True if target == "new" else None,
              "pool": pool if target == "new" else None}  # a tenant's new guest goes in its pool
    verb = "restore"
    try:
        with services.explained(guest, verb):
            upid = pve_guests.restore(client, node, guest.type, vmid=vmid, volid=volid, **params)
        try:
            follow_upid(operation, client, node, upid, reporter=reporter, progress_range=(0, 95))
        except ProxmoxTaskError as exc:
            raise services.GuestActionError(services.explain_error(verb, guest, exc), status=exc.status) from exc
        if target == "same":
            services._status_update(guest, client)
            transaction.on_commit(lambda: services.guest_refresh_if_stale(guest=guest))
            return {"vmid": vmid, "guest_id": guest.pk}
        new = sync_guest(client, guest.cluster_id, vmid)  # listed now, not at the next sync cycle
        reporter.event(f"Restored as {guest.kind} {new or vmid}")
        return {"vmid": vmid, "guest_id": new.pk if new else None}
    finally:
        client.close()


def run_backup_delete(operation, reporter, *, storage_id: int, volid: str) -> dict:
    storage = Storage.objects.select_related("node").get(pk=storage_id)
    node = storage.node_name
    client = client_for(storage.cluster_id)
    try:
        try:
            upid = pve_storage.delete_volume(client, node, storage.storage, volid)
        except ProxmoxError as exc:
            raise services.GuestActionError(f"Could not delete backup {volid}. Proxmox said: {exc}",
                                            status=exc.status) from exc
        if upid:
            try:
                follow_upid(operation, client, node, upid, reporter=reporter, progress_range=(0, 90))
            except ProxmoxTaskError as exc:
                raise services.GuestActionError(f"Could not delete backup {volid}. Proxmox said: {exc}",
                                                status=exc.status) from exc
        _refresh_content(storage, client, reporter)
        return {"volid": volid}
    finally:
        client.close()


@shared_task(name="guests.guest_backup")
def guest_backup_task(operation_id: str, **kwargs) -> None:
    run_operation(operation_id, lambda op, reporter: run_backup(op, reporter, **kwargs))


@shared_task(name="guests.guest_restore")
def guest_restore_task(operation_id: str, **kwargs) -> None:
    run_operation(operation_id, lambda op, reporter: run_restore(op, reporter, **kwargs))


@shared_task(name="guests.backup_delete")
def backup_delete_task(operation_id: str, **kwargs) -> None:
    run_operation(operation_id, lambda op, reporter: run_backup_delete(op, reporter, **kwargs))
