"""Sync across processes: beat's due-task enqueues one Celery task per cluster on a real worker."""

import pytest

from apps.nodes.models import Cluster, Node
from apps.nodes.services import cluster_create
from apps.nodes.tasks import cluster_sync_due

from .conftest import cluster_values, unused_port, wait_for

pytestmark = pytest.mark.django_db(transaction=True)


def test_an_unreachable_cluster_never_stops_another_from_syncing(celery_worker, sim, operator):
    dead = cluster_create(user=operator, name="dead", **cluster_values(sim))
    # The dead cluster stops answering after registration (its server went away; it was another cluster).
    Cluster.objects.filter(pk=dead.pk).update(api_url=f"https://127.0.0.1:{unused_port()}", pve_cluster_name="gone")
    good = cluster_create(user=operator, name="good", **cluster_values(sim))

    cluster_sync_due.delay()
    wait_for(lambda: Cluster.objects.get(pk=good.pk).status == "ok", message="good cluster synced")
    wait_for(lambda: Cluster.objects.get(pk=dead.pk).status == "unreachable", message="dead cluster marked")
    assert Node.objects.filter(cluster=good).count() == 3
    dead.refresh_from_db()
    assert "connection refused" in dead.last_error and dead.failures >= 1


def test_powered_off_node_goes_offline_through_the_worker(celery_worker, sim, operator):
    cluster = cluster_create(user=operator, name="demo", **cluster_values(sim))
    wait_for(lambda: Cluster.objects.get(pk=cluster.pk).last_sync_at is not None, message="first sync")
    assert Node.objects.filter(cluster=cluster, status="online").count() == 3
    sim.admin("POST", "/nodes/pve3/power", state="off")
    Cluster.objects.filter(pk=cluster.pk).update(next_sync_at=None)  # due now
    cluster_sync_due.delay()
    wait_for(lambda: Node.objects.get(cluster=cluster, name="pve3").status == "offline", message="pve3 offline")


def test_api_sync_action_queues_a_cycle(celery_worker, sim, operator, api):
    cluster = cluster_create(user=operator, name="demo", **cluster_values(sim))
    wait_for(lambda: Cluster.objects.get(pk=cluster.pk).last_sync_at is not None, message="first sync")
    before = Cluster.objects.get(pk=cluster.pk).last_sync_at
    body = api.post(f"/api/v1/clusters/{cluster.pk}/sync/", expect=202)
    assert body["cluster"] == cluster.pk
    wait_for(lambda: Cluster.objects.get(pk=cluster.pk).last_sync_at > before, message="second sync")
