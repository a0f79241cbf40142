"""The Celery task `guests.backup_job_refresh` and the sync handler that queues it now and then."""

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
