"""Celery tasks of the inventory sync (thin: the work is in sync.py and rrd.py).

Beat runs `nodes.cluster_sync_due` every couple of seconds; it enqueues one `nodes.cluster_sync`
per cluster that is due, so a dead or slow cluster only ever delays itself.
"""

from __future__ import annotations

import logging
from datetime import timedelta

from celery import shared_task
from django.utils import timezone

from . import presence
from .models import Cluster

logger = logging.getLogger(__name__)

QUEUED_TTL = 120  # an enqueued sync that never ran (worker lost) is re-enqueued after this


def enqueue_sync(cluster_id: int, force: bool = False) -> bool:
    """Queue one sync of `cluster_id` unless one is already queued; True when queued. `force`: the
    next cycle (this one or the one already queued) also reads /cluster/status and the HA status,
    whatever /cluster/resources shows (something changed that only they report)."""
    if force:
        from .sync import slow_reads_stale

        slow_reads_stale(cluster_id)
    if not presence.mark_queued("sync", cluster_id, QUEUED_TTL):
        return False
    cluster_sync.delay(cluster_id)
    return True


@shared_task(name="nodes.cluster_sync", ignore_result=True, acks_late=False)
def cluster_sync(cluster_id: int) -> dict | None:
    """One sync cycle (sync.run_cycle); returns a summary for logs and tests."""
    from .sync import run_cycle

    presence.clear_queued("sync", cluster_id)
    result = run_cycle(cluster_id)
    if result is None:
        return None
    return {"ok": result.ok, "skipped": result.skipped, "error": result.error, "calls": result.calls,
            "changed": result.changed, "duration": result.duration}


def due_clusters(now=None) -> list[int]:
    """Clusters whose next_sync_at passed, plus watched healthy ones whose active interval passed
    (someone just opened a page on an idle cluster: don't make them wait for the idle interval).
    A cluster whose cycle is running is left for the next tick."""
    now = now or timezone.now()
    rows = list(Cluster.objects.values_list("pk", "next_sync_at", "last_attempt_at", "failures", "sync_interval_active"))
    counts = presence.watcher_counts([f"cluster-{pk}" for pk, *_ in rows])
    from django.conf import settings

    due = []
    for pk, next_at, last_attempt, failures, active in rows:
        if presence.is_locked("sync", pk):
            continue  # a cycle of it runs now; queueing another would only wait for its lock
        if next_at is None or next_at <= now:
            due.append(pk)
        elif counts.get(f"cluster-{pk}") and not failures:
            interval = active or settings.SYNC_INTERVAL_ACTIVE
            if last_attempt is None or last_attempt + timedelta(seconds=interval) <= now:
                due.append(pk)
    return due


@shared_task(name="nodes.cluster_sync_due", ignore_result=True)
def cluster_sync_due() -> list[int]:
    """Beat: enqueue the clusters that are due, and the usage-history refresh of watched pages."""
    queued = [pk for pk in due_clusters() if enqueue_sync(pk)]
    from .usage import enqueue_due

    enqueue_due()
    return queued


@shared_task(name="nodes.cluster_usage_refresh", ignore_result=True, acks_late=False)
def cluster_usage_refresh(cluster_id: int) -> dict | None:
    """One /cluster/metrics/export call for the cluster's watched node and guest pages (apps.nodes.usage)."""
    from .usage import refresh_usage

    return refresh_usage(cluster_id)


@shared_task(name="nodes.node_rrd_refresh", ignore_result=True, acks_late=False)
def node_rrd_refresh(node_id: int) -> bool:
    """Fetch one node's usage history (rrddata, clusters without the export) into the cache and push the charts."""
    from .rrd import refresh_rrd

    presence.clear_queued("rrd", node_id)
    return refresh_rrd(node_id)


@shared_task(name="nodes.node_versions_refresh", ignore_result=True, acks_late=False)
def node_versions_refresh(cluster_id: int) -> dict:
    """Read the Proxmox version of the cluster's nodes that are due (apps.nodes.versions)."""
    from .versions import refresh_versions

    presence.clear_queued("versions", cluster_id)
    return refresh_versions(cluster_id)
