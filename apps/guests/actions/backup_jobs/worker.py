"""The Celery task `guests.backup_job_refresh`, and what queues it: a page that shows the jobs being
opened (refresh_if_stale), and the sync handler while someone watches the cluster. Nobody looking:
no read of /cluster/backup (writes through the portal re-read it themselves)."""

from __future__ import annotations

import logging

from celery import shared_task
from django.core.cache import cache
from django.db import transaction

from apps.proxmox import ProxmoxError

from .services import JOB_REFRESH, backup_job_refresh

logger = logging.getLogger(__name__)


@shared_task(name="guests.backup_job_refresh", ignore_result=True)
def backup_job_refresh_task(cluster_id: int) -> None:
    from apps.nodes.models import Cluster

    cluster = Cluster.objects.filter(pk=cluster_id).first()
    if cluster is not None:
        try:
            backup_job_refresh(cluster=cluster)
        except ProxmoxError as exc:
            logger.info("backup jobs of %s not refreshed: %s", cluster, exc)


def refresh_if_stale(cluster_ids) -> bool:
    """Queue a re-read of the backup jobs of each cluster whose mirror was not read (or queued)
    within JOB_REFRESH seconds: a page showing them was opened. True when any was queued (the page
    asks again once its socket is open: the refresh's push may come before it listens)."""
    queued = False
    for pk in cluster_ids:
        if cache.add(f"guests:backup-jobs:{pk}", 1, JOB_REFRESH):
            transaction.on_commit(lambda pk=pk: backup_job_refresh_task.delay(pk), robust=True)
            queued = True
    return queued


def _refresh_jobs_while_watched(cluster, snapshot) -> list:
    """Sync handler: while someone watches the cluster, queue a re-read of its backup jobs every
    JOB_REFRESH seconds (no Proxmox call in the sync cycle itself; none at all for nobody)."""
    if getattr(snapshot, "watchers", 0):
        refresh_if_stale([cluster.pk])
    return []


def _register_sync_handler() -> None:
    from apps.nodes import sync

    sync.register_handler("guests.backup_jobs", _refresh_jobs_while_watched)


_register_sync_handler()
