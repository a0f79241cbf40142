"""Scheduled backup jobs: written through to Proxmox's /cluster/backup, mirrored in BackupJob
(re-read after each write, when a page showing them opens, and every JOB_REFRESH seconds while
someone watches the cluster: worker.py). A re-read that changed the mirror tells the open backup
job pages to fetch their table again."""

from __future__ import annotations

import re
from datetime import datetime, timezone as dt_timezone

from django.core.cache import cache
from django.db import transaction
from django.template.loader import render_to_string
from django.utils import timezone

from apps.core.models import AuditResult
from apps.core.rows import sync_rows
from apps.core.scoping import scope_queryset
from apps.core.services import audit_log
from apps.operations.clients import client_for
from apps.permissions.policy import check
from apps.proxmox import ProxmoxError, ProxmoxValidationError, borrowed
from apps.proxmox import cluster as pve_cluster

from ...models import BackupJob
from .validation import RETENTION_KEYS, _proxmox_field_errors, _validate_job


JOB_REFRESH = 300  # seconds between re-reads of /cluster/backup while the cluster is watched


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
    with borrowed(client, lambda: client_for(cluster.pk)) as client:
        items = pve_cluster.backup_jobs(client)
    cache.set(f"guests:backup-jobs:{cluster.pk}", 1, JOB_REFRESH)
    wanted = {i["id"]: _mirror_fields(i) for i in items}
    with transaction.atomic():
        existing = {job.job_id: job for job in BackupJob.objects.filter(cluster=cluster)}
        rows = sync_rows(BackupJob, existing, wanted, stamp={"updated": timezone.now()},
                         build=lambda job_id, fields: BackupJob(cluster=cluster, job_id=job_id, **fields))
        if rows:
            transaction.on_commit(lambda: push_jobs_changed(cluster.pk), robust=True)
    return list(BackupJob.objects.filter(cluster=cluster))


def push_jobs_changed(cluster_id: int) -> None:
    """Tell the open backup job pages (they watch `cluster-<id>`) to fetch their table again: a
    trigger, not the list, so each page re-reads through its user's selector (best effort)."""
    from apps.core import live
    from apps.nodes import presence

    if not presence.watcher_count(f"cluster-{cluster_id}"):
        return
    live.push(f"cluster-{cluster_id}", html=render_to_string("guests/backups/partials/backupjob_table_stale.html"),
              data={"type": "backup_jobs", "cluster": cluster_id})


def backup_job_create(*, cluster, user, data: dict, request=None) -> BackupJob:
    """Create a scheduled backup job in Proxmox, then mirror it. Validated first (schedule syntax,
    storage, selection, retention); Proxmox's own refusals come back as field errors too.
    Raises PermissionDenied, ValidationError, ProxmoxError (unreachable)."""
    import uuid

    check(user, "backup_job.manage", request=request)
    params = _validate_job(cluster, data)
    job_id = f"backup-{uuid.uuid4().hex[:12]}"
    client = client_for(cluster.pk)
    try:
        try:
            pve_cluster.backup_job_create(client, job_id, **params)
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
    check(user, "backup_job.manage", job, request=request)
    params = _validate_job(job.cluster, data)
    drop = [k for k in ("vmid", "pool", "all", "comment") if k not in params or params[k] is None]
    client = client_for(job.cluster_id)
    try:
        try:
            pve_cluster.backup_job_update(client, job.job_id, delete=drop, **params)
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
    check(user, "backup_job.manage", job, request=request)
    client = client_for(job.cluster_id)
    try:
        pve_cluster.backup_job_delete(client, job.job_id)
        backup_job_refresh(cluster=job.cluster, client=client)
    finally:
        client.close()
    audit_log(user=user, action="guests.backup_job_delete", target=str(job), result=AuditResult.SUCCESS,
              request=request)
    BackupJob.objects.filter(pk=job.pk).delete()
