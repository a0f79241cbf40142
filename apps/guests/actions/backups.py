"""Backups of a guest and scheduled backup jobs (pve-semantics §9).

Back up now (`POST /nodes/{node}/vzdump`), restore over the same guest (`force=1`) or as a new
guest (a vmid reserved first), delete a backup: each an Operation whose percentage comes from
the task log. A guest's backups are the synced StorageContent rows (content=backup) with its
vmid; the storage's content is re-read after every change. Backup jobs live in Proxmox
(`/cluster/backup`); the portal writes through and mirrors them in BackupJob, re-read after each
write and every JOB_REFRESH seconds by the sync loop.
"""

from __future__ import annotations

import logging
import re
from datetime import datetime, timezone as dt_timezone

from celery import shared_task
from django import forms
from django.contrib.auth.mixins import LoginRequiredMixin
from django.core.cache import cache
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.dispatch import receiver
from django.http import Http404
from django.shortcuts import redirect, render
from django.urls import path
from django.utils.cache import patch_vary_headers
from django.views import View
from drf_spectacular.utils import extend_schema
from rest_framework import exceptions, serializers, status
from rest_framework.response import Response
from rest_framework.routers import SimpleRouter
from rest_framework.views import APIView

from apps.core.api import ScopedModelViewSet
from apps.core.models import AuditResult
from apps.core.scoping import is_operator, scope_queryset
from apps.core.services import audit_log
from apps.core.views import is_partial
from apps.operations.api.serializers import OperationSerializer
from apps.operations.clients import client_for
from apps.operations.live import progress_context
from apps.operations.models import Operation
from apps.operations.services import OperationReporter, follow_upid, operation_create, run_operation
from apps.operations.signals import operation_finished
from apps.proxmox import ProxmoxError, ProxmoxTaskError, ProxmoxValidationError
from apps.storage.models import Storage, StorageContent
from apps.storage.selectors import storage_content_list

from .. import services
from ..choices import GuestType
from ..models import BackupJob, Guest, VmidReservation
from ..selectors import guest_backups, guest_get, guest_list
from .create import reserve_vmid, sync_guest

logger = logging.getLogger(__name__)

MODES = [("snapshot", "Snapshot: no downtime"), ("suspend", "Suspend: a short pause"),
         ("stop", "Stop: consistent, with downtime")]
COMPRESSIONS = [("zstd", "ZSTD (fast, good ratio)"), ("lzo", "LZO (fastest)"), ("gzip", "GZIP (slow)"),
                ("0", "None")]
RETENTION_KEYS = ["keep-last", "keep-hourly", "keep-daily", "keep-weekly", "keep-monthly", "keep-yearly"]
SELECTIONS = [("vmid", "Chosen guests"), ("pool", "A pool"), ("all", "All guests")]
JOB_REFRESH = 300  # seconds between re-reads of /cluster/backup by the sync loop


def _only_operators(user, what: str) -> None:
    if not is_operator(user):
        raise PermissionDenied(f"only operators may {what} until tenancy exists")


def _field(name: str, message: str) -> ValidationError:
    return ValidationError({name: [message]})


def _messages(exc: ValidationError) -> str:
    return "; ".join(m for msgs in exc.message_dict.values() for m in msgs)


def _archive_type(volid: str) -> str | None:
    match = re.search(r"vzdump-(qemu|lxc)-\d+-", volid)
    return match.group(1) if match else None


# -- storages ---------------------------------------------------------------------------------


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


def _refresh_content(storage: Storage, client, reporter: OperationReporter) -> None:
    from apps.storage.services import storage_content_refresh

    try:
        storage_content_refresh(storage=storage, client=client)
        reporter.event(f"Backup list of {storage.storage} refreshed")
    except ProxmoxError as exc:  # the action itself succeeded; the list catches up at the next refresh
        reporter.event(f"Could not refresh the backup list of {storage.storage}: {exc}", level="warning")


def _error_line(operation: Operation, pattern: re.Pattern) -> str:
    for message in operation.events.filter(level="error").order_by("-seq").values_list("message", flat=True):
        if match := pattern.search(message):
            return match.group(1)
    return ""


# -- back up now ------------------------------------------------------------------------------


def guest_backup(*, guest: Guest, user, storage: str, mode: str = "snapshot", compress: str = "zstd",
                 notes: str = "", protected: bool = False) -> Operation:
    """Queue a backup of `guest` to backup storage `storage` (kind `guest.backup`).

    Validated before anything reaches Proxmox: operator, known node, a storage holding backups
    reachable from the guest's node, mode and compression from PVE's lists. Raises
    PermissionDenied or ValidationError (field map); nothing is queued then."""
    _only_operators(user, "back up guests")
    if guest.node_id is None:
        raise _field("node", f"the node of {guest} is not known yet; wait for the next sync")
    errors: dict[str, list[str]] = {}
    names = sorted({s.storage for s in backup_storages(guest=guest)})
    if storage not in names:
        errors["storage"] = [f"'{storage}' is not a backup storage reachable from {guest.node.name}; "
                             f"choose one of: {', '.join(names) or 'none configured'}"]
    if mode not in dict(MODES):
        errors["mode"] = [f"must be one of {', '.join(dict(MODES))}"]
    if compress not in dict(COMPRESSIONS):
        errors["compress"] = [f"must be one of {', '.join(dict(COMPRESSIONS))}"]
    if len(notes) > 1024:
        errors["notes"] = ["at most 1024 characters"]
    if errors:
        raise ValidationError(errors)
    return operation_create(
        kind="guest.backup", user=user, task_name="guests.guest_backup", target=guest, cluster_id=guest.cluster_id,
        kwargs={"guest_id": guest.pk, "storage": storage, "mode": mode, "compress": compress, "notes": notes,
                "protected": bool(protected)},
        title=f"Back up {guest.kind} {guest} to {storage}")


_BACKUP_FAILED = re.compile(r"ERROR: Backup of VM \d+ failed - (.+)$")


def run_backup(operation, reporter, *, guest_id: int, storage: str, mode: str, compress: str, notes: str = "",
               protected: bool = False) -> dict:
    """Worker side of guest_backup: vzdump, followed with its `INFO:  45% (...)` percentages,
    then the storage's content re-read so the new backup is listed."""
    guest = Guest.objects.select_related("node", "cluster").get(pk=guest_id)
    client = client_for(guest.cluster_id)
    params = {"vmid": guest.vmid, "storage": storage, "mode": mode, "compress": compress,
              "notes-template": notes or None, "protected": True if protected else None}
    try:
        try:
            upid = client.post(f"nodes/{guest.node.name}/vzdump", **params)
        except ProxmoxError as exc:
            raise services.GuestActionError(services.explain_error("back up", guest, exc), status=exc.status) from exc
        try:
            follow_upid(operation, client, guest.node.name, upid, reporter=reporter, progress_range=(0, 95))
        except ProxmoxTaskError as exc:
            detail = _error_line(operation, _BACKUP_FAILED)
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


# -- restore ----------------------------------------------------------------------------------


def guest_restore(*, guest: Guest, user, backup: StorageContent, target: str = "new", storage: str = "",
                  start: bool = False) -> Operation:
    """Queue a restore of `backup` (kind `guest.restore`): over `guest` itself (`target="same"`,
    Proxmox's force=1; the guest must be stopped) or as a new guest (`target="new"`, unique MACs)
    whose vmid is reserved now, before Proxmox is called, and released when the operation ends.

    Raises PermissionDenied or ValidationError (field map; `cluster` when Proxmox cannot be
    asked for a free vmid); nothing is queued then."""
    _only_operators(user, "restore backups")
    if guest.node_id is None:
        raise _field("node", f"the node of {guest} is not known yet; wait for the next sync")
    errors: dict[str, list[str]] = {}
    if backup.content != "backup" or backup.storage.cluster_id != guest.cluster_id or backup.vmid != guest.vmid:
        errors["backup"] = [f"{backup.volid} is not a backup of {guest.kind} {guest}"]
    elif _archive_type(backup.volid) not in (None, guest.type):
        errors["backup"] = [f"{backup.filename} is a {'VM' if guest.type == 'lxc' else 'container'} backup"]
    if target not in ("same", "new"):
        errors["target"] = ["must be 'same' (overwrite this guest) or 'new' (a new guest)"]
    elif target == "same" and guest.is_running:
        errors["target"] = [f"{guest.kind} {guest} is running; shut it down before restoring over it"]
    node = backup.storage.node if backup.storage.node_id else guest.node
    if backup.storage.node_id is None and node.name not in backup.storage.nodes:
        errors["backup"] = [f"storage {backup.storage.storage} is not available on {node.name}"]
    if storage:
        names = sorted({s.storage for s in _disk_storages(guest)})
        if storage not in names:
            errors["storage"] = [f"'{storage}' cannot hold {'VM disks' if guest.type == 'qemu' else 'CT volumes'} "
                                 f"on {node.name}; choose one of: {', '.join(names)}"]
    if errors:
        raise ValidationError(errors)
    kwargs = {"guest_id": guest.pk, "volid": backup.volid, "node": node.name, "target": target,
              "storage": storage or None, "start": bool(start), "storage_id": backup.storage_id}
    with transaction.atomic():
        if target == "new":
            reservation = reserve_vmid(cluster=guest.cluster, purpose="restore")
            kwargs["vmid"] = reservation.vmid
            title = f"Restore {backup.filename} as new {guest.kind} {reservation.vmid}"
        else:
            kwargs["vmid"] = guest.vmid
            title = f"Restore {guest.kind} {guest} from {backup.filename}"
        operation = operation_create(kind="guest.restore", user=user, task_name="guests.guest_restore", target=guest,
                                     cluster_id=guest.cluster_id, kwargs=kwargs, title=title)
        if target == "new":
            VmidReservation.objects.filter(pk=reservation.pk).update(operation_id=operation.pk)
    return operation


@receiver(operation_finished, dispatch_uid="guests.backups.release_vmid")
def _release_vmid(sender, operation, **kwargs) -> None:
    """A finished restore, whatever the outcome, holds its vmid no longer: Proxmox has the guest or nothing."""
    if operation.kind == "guest.restore":
        VmidReservation.objects.filter(operation_id=operation.pk).delete()


def run_restore(operation, reporter, *, guest_id: int, volid: str, node: str, target: str, vmid: int,
                storage: str | None = None, start: bool = False, storage_id: int | None = None) -> dict:
    """Worker side of guest_restore: qmrestore/vzrestore with its percentage, then the guest row
    re-read (same) or the new guest synced in on its own (new)."""
    guest = Guest.objects.select_related("node", "cluster").get(pk=guest_id)
    client = client_for(guest.cluster_id)
    params = {"vmid": vmid, "storage": storage, "start": True if start else None,
              "force": True if target == "same" else None, "unique": True if target == "new" else None}
    if guest.type == GuestType.QEMU:
        params["archive"] = volid
    else:
        params.update(ostemplate=volid, restore=True)
    verb = "restore"
    try:
        try:
            upid = client.post(f"nodes/{node}/{guest.type}", **params)
        except ProxmoxError as exc:
            raise services.GuestActionError(services.explain_error(verb, guest, exc), status=exc.status) from exc
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


# -- delete -----------------------------------------------------------------------------------


def backup_delete(*, backup: StorageContent, user, guest: Guest | None = None) -> Operation:
    """Queue the deletion of backup volume `backup` (kind `backup.delete`). Protected backups
    are refused (ValidationError on `backup`), as Proxmox would refuse them."""
    _only_operators(user, "delete backups")
    if backup.content != "backup":
        raise _field("backup", f"{backup.volid} is not a backup")
    if backup.protected:
        raise _field("backup", f"{backup.filename} is protected; remove its protection first")
    if backup.storage.node_name is None:
        raise _field("backup", f"no node reports storage {backup.storage.storage}")
    return operation_create(kind="backup.delete", user=user, task_name="guests.backup_delete",
                            target=guest or ("storage.storagecontent", backup.pk, backup.filename),
                            cluster_id=backup.storage.cluster_id,
                            kwargs={"storage_id": backup.storage_id, "volid": backup.volid},
                            title=f"Delete backup {backup.filename}")


def run_backup_delete(operation, reporter, *, storage_id: int, volid: str) -> dict:
    storage = Storage.objects.select_related("node").get(pk=storage_id)
    node = storage.node_name
    client = client_for(storage.cluster_id)
    try:
        try:
            upid = client.delete(f"nodes/{node}/storage/{storage.storage}/content/{volid}")
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


# -- Celery tasks (thin) ----------------------------------------------------------------------


@shared_task(name="guests.guest_backup")
def guest_backup_task(operation_id: str, **kwargs) -> None:
    run_operation(operation_id, lambda op, reporter: run_backup(op, reporter, **kwargs))


@shared_task(name="guests.guest_restore")
def guest_restore_task(operation_id: str, **kwargs) -> None:
    run_operation(operation_id, lambda op, reporter: run_restore(op, reporter, **kwargs))


@shared_task(name="guests.backup_delete")
def backup_delete_task(operation_id: str, **kwargs) -> None:
    run_operation(operation_id, lambda op, reporter: run_backup_delete(op, reporter, **kwargs))


@shared_task(name="guests.backup_job_refresh", ignore_result=True)
def backup_job_refresh_task(cluster_id: int) -> None:
    from apps.nodes.models import Cluster

    cluster = Cluster.objects.filter(pk=cluster_id).first()
    if cluster is not None:
        try:
            backup_job_refresh(cluster=cluster)
        except ProxmoxError as exc:
            logger.info("backup jobs of %s not refreshed: %s", cluster, exc)


# -- calendar events --------------------------------------------------------------------------

_DAY_NAMES = ["monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"]
_KEYWORDS = {"minutely", "hourly", "daily", "weekly", "monthly", "yearly", "annually", "quarterly",
             "semiannually"}


def _weekday(word: str) -> None:
    if len(word) < 3 or not any(name.startswith(word) for name in _DAY_NAMES):
        raise ValueError(f"'{word}' is not a weekday (mon, tue, wed, thu, fri, sat, sun)")


def _numbers(text: str, low: int, high: int, what: str) -> None:
    for item in text.split(","):
        base, slash, step = item.partition("/")
        if slash and not (step.isdigit() and int(step) >= 1):
            raise ValueError(f"'{item}': the repetition after '/' must be a positive number")
        if base == "*":
            continue
        first, dots, last = base.partition("..")
        for value in (first, last) if dots else (first,):
            if not value.isdigit() or not low <= int(value) <= high:
                raise ValueError(f"'{item}': {what} must be * or numbers from {low} to {high}")
        if dots and int(first) > int(last):
            raise ValueError(f"'{item}': the range runs backwards")


def calendar_event_error(text: str) -> str | None:
    """Why `text` is not a PVE calendar event (`[WEEKDAY] [[YEARS-]MONTHS-DAYS] [HOURS:MINUTES[:SECONDS]]`
    or a keyword such as `daily`), or None when it is one."""
    text = (text or "").strip()
    if not text:
        return "enter a schedule, e.g. 'daily', 'mon..fri 02:30' or '*/15'"
    if len(text) > 128:
        return "at most 128 characters"
    if text in _KEYWORDS:
        return None
    parts = text.split()
    try:
        if parts and parts[0][0].isalpha():
            for item in parts.pop(0).split(","):
                for word in item.split(".."):
                    _weekday(word)
        if parts and "-" in parts[0] and ":" not in parts[0]:
            date = parts.pop(0).split("-")
            if len(date) not in (2, 3):
                raise ValueError("a date is MONTHS-DAYS or YEARS-MONTHS-DAYS")
            for value, (low, high, what) in zip(date, [(1970, 9999, "years"), (1, 12, "months"), (1, 31, "days")]
                                                [3 - len(date):]):
                _numbers(value, low, high, what)
        if parts:
            clock = parts.pop(0).split(":")
            if len(clock) == 1:
                _numbers(clock[0], 0, 59, "minutes")
            elif len(clock) in (2, 3):
                for value, (low, high, what) in zip(clock, [(0, 23, "hours"), (0, 59, "minutes"), (0, 59, "seconds")]):
                    _numbers(value, low, high, what)
            else:
                raise ValueError("a time is HOURS:MINUTES or HOURS:MINUTES:SECONDS")
        if parts:
            raise ValueError(f"unexpected '{' '.join(parts)}'")
    except ValueError as exc:
        return f"'{text}' is not a valid calendar event: {exc}"
    return None


# -- backup jobs ------------------------------------------------------------------------------


def backup_job_list(*, user):
    return scope_queryset(BackupJob.objects.select_related("cluster"), user)


def _epoch(value) -> datetime | None:
    try:
        return datetime.fromtimestamp(int(value), tz=dt_timezone.utc) if value else None
    except (TypeError, ValueError):
        return None


def _mirror_fields(item: dict) -> dict:
    if item.get("vmid"):
        selection = "vmid"
    elif item.get("pool"):
        selection = "pool"
    else:
        selection = "all"
    retention = {}
    for part in (item.get("prune-backups") or "").split(","):
        key, _, value = part.partition("=")
        if key in RETENTION_KEYS and value.isdigit():
            retention[key] = int(value)
        elif key == "keep-all" and value == "1":
            retention[key] = 1
    return {
        "enabled": str(item.get("enabled", 1)) not in ("0", "false"), "schedule": item.get("schedule") or "",
        "storage": item.get("storage") or "", "selection": selection,
        "vmids": [int(v) for v in re.split(r"[,;\s]+", str(item.get("vmid") or "")) if v.isdigit()],
        "pool": item.get("pool") or "", "mode": item.get("mode") or "snapshot",
        "compress": str(item.get("compress", "0")), "retention": retention, "comment": item.get("comment") or "",
        "next_run": _epoch(item.get("next-run")), "config": item,
    }


def backup_job_refresh(*, cluster, client=None) -> list[BackupJob]:
    """Make the BackupJob mirror of `cluster` match `GET /cluster/backup` (one call): creates,
    updates and deletes rows. Returns the cluster's jobs."""
    own = client is None
    client = client or client_for(cluster.pk)
    try:
        items = client.get("cluster/backup") or []
    finally:
        if own:
            client.close()
    cache.set(f"guests:backup-jobs:{cluster.pk}", 1, JOB_REFRESH)
    wanted = {i["id"]: _mirror_fields(i) for i in items if i.get("id")}
    with transaction.atomic():
        BackupJob.objects.filter(cluster=cluster).exclude(job_id__in=list(wanted)).delete()
        for job_id, fields in wanted.items():
            BackupJob.objects.update_or_create(cluster=cluster, job_id=job_id, defaults=fields)
    return list(BackupJob.objects.filter(cluster=cluster))


def _refresh_jobs_now_and_then(cluster, snapshot) -> list:
    """Sync handler: queue a re-read of the cluster's backup jobs every JOB_REFRESH seconds
    (no Proxmox call in the sync cycle itself)."""
    if cache.add(f"guests:backup-jobs:{cluster.pk}", 1, JOB_REFRESH):
        transaction.on_commit(lambda: backup_job_refresh_task.delay(cluster.pk))
    return []


def _register_sync_handler() -> None:
    from apps.nodes import sync

    sync.register_handler("guests.backup_jobs", _refresh_jobs_now_and_then)


_register_sync_handler()


def _validate_job(cluster, data: dict) -> dict:
    """The Proxmox parameters for a job described by `data`, or ValidationError naming each field."""
    errors: dict[str, list[str]] = {}
    if problem := calendar_event_error(data.get("schedule", "")):
        errors["schedule"] = [problem]
    storages = set(Storage.objects.filter(cluster=cluster, content__contains=["backup"])
                   .values_list("storage", flat=True))
    storage = data.get("storage") or ""
    if storage not in storages:
        errors["storage"] = [f"'{storage}' is not a backup storage of {cluster}; choose one of: "
                             f"{', '.join(sorted(storages)) or 'none configured'}"]
    selection = data.get("selection") or "vmid"
    params: dict = {"schedule": (data.get("schedule") or "").strip(), "storage": storage,
                    "enabled": bool(data.get("enabled", True)), "mode": data.get("mode") or "snapshot",
                    "compress": data.get("compress") or "zstd", "comment": data.get("comment") or None}
    if selection == "vmid":
        vmids = sorted({int(v) for v in data.get("vmids") or []})
        known = set(Guest.objects.filter(cluster=cluster, vmid__in=vmids).values_list("vmid", flat=True))
        if not vmids:
            errors["vmids"] = ["choose at least one guest"]
        elif unknown := [str(v) for v in vmids if v not in known]:
            errors["vmids"] = [f"no guest {', '.join(unknown)} in cluster {cluster}"]
        params["vmid"] = ",".join(map(str, vmids))
    elif selection == "pool":
        if not (data.get("pool") or "").strip():
            errors["pool"] = ["name the pool whose guests are backed up"]
        params["pool"] = (data.get("pool") or "").strip()
    elif selection == "all":
        params["all"] = True
    else:
        errors["selection"] = ["must be one of vmid, pool, all"]
    if params["mode"] not in dict(MODES):
        errors["mode"] = [f"must be one of {', '.join(dict(MODES))}"]
    if params["compress"] not in dict(COMPRESSIONS):
        errors["compress"] = [f"must be one of {', '.join(dict(COMPRESSIONS))}"]
    retention = data.get("retention") or {}
    parts = []
    for key, value in retention.items():
        if key not in RETENTION_KEYS + ["keep-all"]:
            errors.setdefault("retention", []).append(f"unknown key '{key}'; use {', '.join(RETENTION_KEYS)}")
        elif value in (None, ""):
            continue
        elif not isinstance(value, int) or isinstance(value, bool) or value < 0:
            errors.setdefault("retention", []).append(f"{key} must be a whole number of 0 or more")
        elif value:
            parts.append(f"{key}={value}")
    params["prune-backups"] = ",".join(parts) if parts else "keep-all=1"
    if len(data.get("comment") or "") > 512:
        errors["comment"] = ["at most 512 characters"]
    if errors:
        raise ValidationError(errors)
    return params


_PVE_FIELDS = {"vmid": "vmids", "prune-backups": "retention", "all": "selection"}


def _proxmox_field_errors(exc: ProxmoxError) -> ValidationError:
    if isinstance(exc, ProxmoxValidationError) and exc.errors:
        return ValidationError({_PVE_FIELDS.get(k, k): [f"Proxmox said: {v}"] for k, v in exc.errors.items()})
    return ValidationError({"__all__": [f"Proxmox refused the job: {exc}"]})


def backup_job_create(*, cluster, user, data: dict, request=None) -> BackupJob:
    """Create a scheduled backup job in Proxmox, then mirror it. Validated first (schedule syntax,
    storage, selection, retention); Proxmox's own refusals come back as field errors too.
    Raises PermissionDenied, ValidationError, ProxmoxError (unreachable)."""
    import uuid

    _only_operators(user, "manage backup jobs")
    params = _validate_job(cluster, data)
    job_id = f"backup-{uuid.uuid4().hex[:12]}"
    client = client_for(cluster.pk)
    try:
        try:
            client.post("cluster/backup", id=job_id, **params)
        except (ProxmoxValidationError, ProxmoxError) as exc:
            if exc.status and 400 <= exc.status < 500 or isinstance(exc, ProxmoxValidationError):
                raise _proxmox_field_errors(exc) from exc
            raise
        backup_job_refresh(cluster=cluster, client=client)
    finally:
        client.close()
    job = BackupJob.objects.get(cluster=cluster, job_id=job_id)
    audit_log(user=user, action="guests.backup_job_create", target=job, result=AuditResult.SUCCESS, request=request,
              detail={"schedule": params["schedule"]})
    return job


def backup_job_update(*, job: BackupJob, user, data: dict, request=None) -> BackupJob:
    """Change a job in Proxmox (selection switches drop the other selection keys), then re-mirror."""
    _only_operators(user, "manage backup jobs")
    params = _validate_job(job.cluster, data)
    drop = [k for k in ("vmid", "pool", "all", "comment") if k not in params or params[k] is None]
    client = client_for(job.cluster_id)
    try:
        try:
            client.put(f"cluster/backup/{job.job_id}", delete=",".join(drop) or None, **params)
        except ProxmoxError as exc:
            if isinstance(exc, ProxmoxValidationError) or (exc.status and 400 <= exc.status < 500):
                raise _proxmox_field_errors(exc) from exc
            raise
        backup_job_refresh(cluster=job.cluster, client=client)
    finally:
        client.close()
    audit_log(user=user, action="guests.backup_job_update", target=job, result=AuditResult.SUCCESS, request=request)
    return BackupJob.objects.filter(pk=job.pk).first() or job


def backup_job_delete(*, job: BackupJob, user, request=None) -> None:
    """Delete the job in Proxmox and its mirror row."""
    _only_operators(user, "manage backup jobs")
    client = client_for(job.cluster_id)
    try:
        client.delete(f"cluster/backup/{job.job_id}")
        backup_job_refresh(cluster=job.cluster, client=client)
    finally:
        client.close()
    audit_log(user=user, action="guests.backup_job_delete", target=str(job), result=AuditResult.SUCCESS,
              request=request)
    BackupJob.objects.filter(pk=job.pk).delete()


# -- forms ------------------------------------------------------------------------------------


class BackupForm(forms.Form):
    storage = forms.ChoiceField(label="Backup storage")
    mode = forms.ChoiceField(choices=MODES, initial="snapshot")
    compress = forms.ChoiceField(label="Compression", choices=COMPRESSIONS, initial="zstd")
    notes = forms.CharField(required=False, max_length=1024, help_text="Shown beside the backup, e.g. {{guestname}}.")
    protected = forms.BooleanField(required=False, help_text="Protected backups are never pruned or deleted.")

    def __init__(self, *args, guest: Guest, **kwargs):
        super().__init__(*args, **kwargs)
        names = sorted({s.storage for s in backup_storages(guest=guest)})
        self.fields["storage"].choices = [(n, n) for n in names]


class RestoreForm(forms.Form):
    target = forms.ChoiceField(choices=[("new", "As a new guest (next free vmid, new MAC addresses)"),
                                        ("same", "Over this guest (replaces its disks and configuration)")],
                               initial="new", widget=forms.RadioSelect)
    storage = forms.ChoiceField(required=False, label="Disk storage")
    start = forms.BooleanField(required=False, label="Start after restore")

    def __init__(self, *args, guest: Guest, **kwargs):
        super().__init__(*args, **kwargs)
        names = sorted({s.storage for s in _disk_storages(guest)})
        self.fields["storage"].choices = [("", "Where the disks were")] + [(n, n) for n in names]


class BackupJobForm(forms.Form):
    cluster = forms.ModelChoiceField(queryset=None, empty_label=None)
    schedule = forms.CharField(max_length=128, help_text="PVE calendar event: daily, mon..fri 02:30, sat 03:00, */15")
    enabled = forms.BooleanField(required=False, initial=True)
    storage = forms.CharField(max_length=100)
    selection = forms.ChoiceField(choices=SELECTIONS, initial="vmid", widget=forms.RadioSelect)
    vmids = forms.TypedMultipleChoiceField(coerce=int, required=False, label="Guests")
    pool = forms.CharField(required=False, max_length=100)
    mode = forms.ChoiceField(choices=MODES, initial="snapshot")
    compress = forms.ChoiceField(label="Compression", choices=COMPRESSIONS, initial="zstd")
    comment = forms.CharField(required=False, max_length=512)

    def __init__(self, *args, user, **kwargs):
        from apps.nodes.selectors import cluster_list

        super().__init__(*args, **kwargs)
        self.fields["cluster"].queryset = cluster_list(user=user)
        self.fields["vmids"].choices = [(g.vmid, f"{g.vmid} {g.name}".strip())
                                        for g in guest_list(user=user).filter(template=False).order_by("vmid")]
        for key in RETENTION_KEYS:
            self.fields[key] = forms.IntegerField(required=False, min_value=0, label=key.replace("-", " ").capitalize())

    def job_data(self) -> dict:
        data = {k: self.cleaned_data[k] for k in ("schedule", "enabled", "storage", "selection", "vmids", "pool",
                                                  "mode", "compress", "comment")}
        data["retention"] = {k: self.cleaned_data[k] for k in RETENTION_KEYS if self.cleaned_data.get(k) is not None}
        return data


def _job_initial(job: BackupJob) -> dict:
    return {"cluster": job.cluster_id, "schedule": job.schedule, "enabled": job.enabled, "storage": job.storage,
            "selection": job.selection, "vmids": job.vmids, "pool": job.pool, "mode": job.mode,
            "compress": job.compress, "comment": job.comment, **job.retention}


# -- views ------------------------------------------------------------------------------------


def _render(request, template: str, context: dict, status: int = 200):
    response = render(request, template, context, status=status)
    patch_vary_headers(response, ("HX-Request",))
    return response


def _guest_or_404(request, pk) -> Guest:
    guest = guest_get(user=request.user, pk=pk)
    if guest is None:
        raise Http404("No such guest.")
    return guest


def _backup_or_404(request, guest: Guest, backup_pk) -> StorageContent:
    backup = guest_backups(user=request.user, guest=guest).filter(pk=backup_pk).first()
    if backup is None:
        raise Http404("No such backup of this guest.")
    return backup


def _started(request, operation: Operation, guest: Guest):
    if not is_partial(request):
        return redirect(operation.get_absolute_url())
    return _render(request, "guests/backups/partials/started.html", {"guest": guest, **progress_context(operation)})


class GuestBackupsView(LoginRequiredMixin, View):
    """The guest's backups page: list (from the synced content), back up now, restore, delete."""

    def get(self, request, pk):
        guest = _guest_or_404(request, pk)
        backups = list(guest_backups(user=request.user, guest=guest))
        jobs = [j for j in backup_job_list(user=request.user).filter(cluster_id=guest.cluster_id)
                if j.selection == "all" or guest.vmid in j.vmids or (j.selection == "pool" and j.pool == guest.pool)]
        return _render(request, "guests/backups/backups.html", {
            "guest": guest, "object": guest, "backups": backups, "jobs": jobs,
            "live_groups": [f"cluster-{guest.cluster_id}"]})


class GuestBackupView(LoginRequiredMixin, View):
    """GET: the back-up-now dialog; POST: queue it and answer the live progress panel."""

    def get(self, request, pk):
        guest = _guest_or_404(request, pk)
        return _render(request, "guests/backups/partials/backup_dialog.html",
                       {"guest": guest, "form": BackupForm(guest=guest)})

    def post(self, request, pk):
        guest = _guest_or_404(request, pk)
        form = BackupForm(request.POST, guest=guest)
        error = ""
        if form.is_valid():
            try:
                operation = guest_backup(guest=guest, user=request.user, **form.cleaned_data)
            except (ValidationError, PermissionDenied) as exc:
                error = _messages(exc) if isinstance(exc, ValidationError) else str(exc)
            else:
                audit_log(user=request.user, action="guests.guest_backup", target=guest, result=AuditResult.ACCEPTED,
                          request=request, detail={"operation": str(operation.pk)})
                return _started(request, operation, guest)
        return _render(request, "guests/backups/partials/backup_dialog.html",
                       {"guest": guest, "form": form, "error": error})


class GuestRestoreView(LoginRequiredMixin, View):
    """GET: the restore dialog for one backup; POST: queue the restore (progress panel)."""

    def get(self, request, pk, backup_pk):
        guest = _guest_or_404(request, pk)
        backup = _backup_or_404(request, guest, backup_pk)
        return _render(request, "guests/backups/partials/restore_dialog.html",
                       {"guest": guest, "backup": backup, "form": RestoreForm(guest=guest)})

    def post(self, request, pk, backup_pk):
        guest = _guest_or_404(request, pk)
        backup = _backup_or_404(request, guest, backup_pk)
        form = RestoreForm(request.POST, guest=guest)
        error = ""
        if form.is_valid():
            try:
                operation = guest_restore(guest=guest, user=request.user, backup=backup, **form.cleaned_data)
            except ValidationError as exc:
                error = _messages(exc)
            except PermissionDenied as exc:
                error = str(exc)
            except ProxmoxError as exc:
                error = f"Could not reserve a vmid. Proxmox said: {exc}"
            else:
                audit_log(user=request.user, action="guests.guest_restore", target=guest, result=AuditResult.ACCEPTED,
                          request=request, detail={"operation": str(operation.pk), "volid": backup.volid})
                return _started(request, operation, guest)
        return _render(request, "guests/backups/partials/restore_dialog.html",
                       {"guest": guest, "backup": backup, "form": form, "error": error})


class GuestBackupDeleteView(LoginRequiredMixin, View):
    """POST: delete one backup of the guest (progress panel)."""

    def post(self, request, pk, backup_pk):
        guest = _guest_or_404(request, pk)
        backup = _backup_or_404(request, guest, backup_pk)
        try:
            operation = backup_delete(backup=backup, user=request.user, guest=guest)
        except (ValidationError, PermissionDenied) as exc:
            error = _messages(exc) if isinstance(exc, ValidationError) else str(exc)
            return _render(request, "guests/partials/guest_action_error.html", {"error": error})
        audit_log(user=request.user, action="guests.backup_delete", target=guest, result=AuditResult.ACCEPTED,
                  request=request, detail={"operation": str(operation.pk), "volid": backup.volid})
        return _started(request, operation, guest)


class BackupJobListView(LoginRequiredMixin, View):
    def get(self, request):
        from apps.nodes.selectors import cluster_list

        for cluster in cluster_list(user=request.user):  # an opened page wants a fresh mirror
            if cache.add(f"guests:backup-jobs:{cluster.pk}", 1, JOB_REFRESH):
                backup_job_refresh_task.delay(cluster.pk)
        jobs = backup_job_list(user=request.user)
        return _render(request, "guests/backups/backupjob_list.html", {"jobs": jobs, "title": "Backup jobs"})


class BackupJobEditView(LoginRequiredMixin, View):
    """Add (pk=None) or edit a backup job; field errors from our checks and from Proxmox."""

    def _job(self, request, pk) -> BackupJob | None:
        if pk is None:
            return None
        job = backup_job_list(user=request.user).filter(pk=pk).first()
        if job is None:
            raise Http404("No such backup job.")
        return job

    def _page(self, request, form, job, status=200):
        return _render(request, "guests/backups/backupjob_edit.html", {
            "form": form, "job": job, "retention_fields": [form[k] for k in RETENTION_KEYS],
            "title": f"Backup job {job}" if job else "Add backup job"}, status)

    def get(self, request, pk=None):
        job = self._job(request, pk)
        form = BackupJobForm(user=request.user, initial=_job_initial(job) if job else None)
        return self._page(request, form, job)

    def post(self, request, pk=None):
        job = self._job(request, pk)
        form = BackupJobForm(request.POST, user=request.user)
        if form.is_valid():
            try:
                if job is None:
                    backup_job_create(cluster=form.cleaned_data["cluster"], user=request.user, data=form.job_data(),
                                      request=request)
                else:
                    backup_job_update(job=job, user=request.user, data=form.job_data(), request=request)
            except ValidationError as exc:
                for name, messages in exc.message_dict.items():
                    for message in messages:  # `retention` and `__all__` have no single field here
                        form.add_error(name if name in form.fields else None, message)
            except PermissionDenied as exc:
                form.add_error(None, str(exc))
            except ProxmoxError as exc:
                form.add_error(None, f"Proxmox did not answer: {exc}")
            else:
                return redirect("guests:backupjob_list")
        return self._page(request, form, job, status=400)


class BackupJobDeleteView(LoginRequiredMixin, View):
    def post(self, request, pk):
        job = backup_job_list(user=request.user).filter(pk=pk).first()
        if job is None:
            raise Http404("No such backup job.")
        try:
            backup_job_delete(job=job, user=request.user, request=request)
        except (PermissionDenied, ProxmoxError) as exc:
            return _render(request, "guests/partials/guest_action_error.html", {"error": str(exc)}, status=400)
        return redirect("guests:backupjob_list")


urlpatterns = [
    path("guests/<int:pk>/backups/", GuestBackupsView.as_view(), name="guest_backups"),
    path("guests/<int:pk>/backup/", GuestBackupView.as_view(), name="guest_backup"),
    path("guests/<int:pk>/backups/<int:backup_pk>/restore/", GuestRestoreView.as_view(), name="guest_restore"),
    path("guests/<int:pk>/backups/<int:backup_pk>/delete/", GuestBackupDeleteView.as_view(), name="backup_delete"),
    path("backup-jobs/", BackupJobListView.as_view(), name="backupjob_list"),
    path("backup-jobs/add/", BackupJobEditView.as_view(), name="backupjob_add"),
    path("backup-jobs/<int:pk>/edit/", BackupJobEditView.as_view(), name="backupjob_edit"),
    path("backup-jobs/<int:pk>/delete/", BackupJobDeleteView.as_view(), name="backupjob_delete"),
]


# -- API --------------------------------------------------------------------------------------


def _api_guest(request, pk) -> Guest:
    guest = guest_get(user=request.user, pk=pk)
    if guest is None:
        raise exceptions.NotFound("No such guest.")
    return guest


def _accepted(request, operation: Operation) -> Response:
    return Response(OperationSerializer(operation, context={"request": request}).data, status=status.HTTP_202_ACCEPTED)


class BackupRequestSerializer(serializers.Serializer):
    storage = serializers.CharField(max_length=100, help_text="a storage holding `backup` content")
    mode = serializers.ChoiceField(choices=[m for m, _ in MODES], default="snapshot")
    compress = serializers.ChoiceField(choices=[c for c, _ in COMPRESSIONS], default="zstd")
    notes = serializers.CharField(required=False, allow_blank=True, max_length=1024, default="")
    protected = serializers.BooleanField(required=False, default=False)


class RestoreRequestSerializer(serializers.Serializer):
    backup = serializers.CharField(help_text="volid of one of the guest's backups, e.g. nfs-store:backup/vzdump-...")
    target = serializers.ChoiceField(choices=["new", "same"], default="new")
    storage = serializers.CharField(required=False, allow_blank=True, default="", help_text="disk storage (optional)")
    start = serializers.BooleanField(required=False, default=False)


class GuestBackupAPIView(APIView):
    """Back up the guest now (202 with the operation; its progress is vzdump's percentage)."""

    @extend_schema(request=BackupRequestSerializer, responses={202: OperationSerializer})
    def post(self, request, pk):
        guest = _api_guest(request, pk)
        body = BackupRequestSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        try:
            operation = guest_backup(guest=guest, user=request.user, **body.validated_data)
        except PermissionDenied as exc:
            raise exceptions.PermissionDenied(str(exc))
        audit_log(user=request.user, action="guests.guest_backup", target=guest, result=AuditResult.ACCEPTED,
                  request=request, detail={"operation": str(operation.pk)})
        return _accepted(request, operation)


class GuestRestoreAPIView(APIView):
    """Restore one of the guest's backups over it (`same`) or as a new guest (`new`)."""

    @extend_schema(request=RestoreRequestSerializer, responses={202: OperationSerializer})
    def post(self, request, pk):
        guest = _api_guest(request, pk)
        body = RestoreRequestSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        data = body.validated_data
        backup = guest_backups(user=request.user, guest=guest).filter(volid=data["backup"]).first()
        if backup is None:
            raise exceptions.ValidationError({"backup": [f"'{data['backup']}' is not a backup of {guest}"]})
        try:
            operation = guest_restore(guest=guest, user=request.user, backup=backup, target=data["target"],
                                      storage=data["storage"], start=data["start"])
        except PermissionDenied as exc:
            raise exceptions.PermissionDenied(str(exc))
        except ProxmoxError as exc:
            raise exceptions.APIException(f"Could not reserve a vmid. Proxmox said: {exc}")
        audit_log(user=request.user, action="guests.guest_restore", target=guest, result=AuditResult.ACCEPTED,
                  request=request, detail={"operation": str(operation.pk), "volid": backup.volid})
        return _accepted(request, operation)


class BackupDeleteAPIView(APIView):
    """Delete a backup volume (202 with the operation)."""

    @extend_schema(request=None, responses={202: OperationSerializer})
    def delete(self, request, pk):
        backup = storage_content_list(user=request.user).filter(pk=pk, content="backup").first()
        if backup is None:
            raise exceptions.NotFound("No such backup.")
        guest = Guest.objects.filter(cluster_id=backup.storage.cluster_id, vmid=backup.vmid).first()
        try:
            operation = backup_delete(backup=backup, user=request.user, guest=guest)
        except PermissionDenied as exc:
            raise exceptions.PermissionDenied(str(exc))
        audit_log(user=request.user, action="guests.backup_delete", target=guest or backup.volid,
                  result=AuditResult.ACCEPTED, request=request, detail={"operation": str(operation.pk)})
        return _accepted(request, operation)


class BackupJobSerializer(serializers.ModelSerializer):
    vmids = serializers.ListField(child=serializers.IntegerField(min_value=100), required=False, default=list)
    retention = serializers.DictField(child=serializers.IntegerField(min_value=0, allow_null=True), required=False,
                                      default=dict, help_text="keep-last, keep-hourly, keep-daily, keep-weekly, "
                                                              "keep-monthly, keep-yearly")
    selection = serializers.ChoiceField(choices=[s for s, _ in SELECTIONS], default="vmid")
    mode = serializers.ChoiceField(choices=[m for m, _ in MODES], default="snapshot")
    compress = serializers.ChoiceField(choices=[c for c, _ in COMPRESSIONS], default="zstd")

    class Meta:
        model = BackupJob
        fields = ["id", "cluster", "job_id", "enabled", "schedule", "storage", "selection", "vmids", "pool", "mode",
                  "compress", "retention", "comment", "next_run", "updated"]
        read_only_fields = ["id", "job_id", "next_run", "updated"]

    def validate_cluster(self, cluster):
        from apps.nodes.selectors import cluster_list

        if not cluster_list(user=self.context["request"].user).filter(pk=cluster.pk).exists():
            raise serializers.ValidationError("no such cluster")
        return cluster


class BackupJobViewSet(ScopedModelViewSet):
    """Scheduled backup jobs (stored in Proxmox's /cluster/backup, mirrored here). Writes go to
    Proxmox first; schedule, storage, selection and retention are checked before."""

    selector = backup_job_list
    serializer_class = BackupJobSerializer
    ordering = ["cluster", "job_id"]
    filterset_fields = ["cluster", "enabled", "storage"]

    def _data(self, serializer) -> dict:
        return {k: v for k, v in serializer.validated_data.items() if k != "cluster"}

    def _call(self, fn, **kwargs):
        try:
            return fn(user=self.request.user, request=self.request, **kwargs)
        except PermissionDenied as exc:
            raise exceptions.PermissionDenied(str(exc))
        except ProxmoxError as exc:
            raise exceptions.APIException(f"Proxmox did not answer: {exc}")

    def perform_create(self, serializer):
        serializer.instance = self._call(backup_job_create, cluster=serializer.validated_data["cluster"],
                                         data=self._data(serializer))

    def perform_update(self, serializer):
        job = serializer.instance
        data = {**_job_initial(job), **self._data(serializer)}
        data.pop("cluster", None)
        if "retention" not in serializer.validated_data:
            data["retention"] = job.retention
        serializer.instance = self._call(backup_job_update, job=job, data=data)

    def perform_destroy(self, instance):
        self._call(backup_job_delete, job=instance)


router = SimpleRouter()
router.register("backup-jobs", BackupJobViewSet, basename="backupjob")

api_urlpatterns = router.urls + [
    path("guests/<int:pk>/backup/", GuestBackupAPIView.as_view(), name="guest-backup"),
    path("guests/<int:pk>/restore/", GuestRestoreAPIView.as_view(), name="guest-restore"),
    path("backups/<int:pk>/", BackupDeleteAPIView.as_view(), name="backup-delete"),
]
