"""The sync against pvesim: nodes and quorum follow Proxmox, a constant number of calls per
cycle, no writes when nothing changed, handlers called, unreachable clusters marked and backed off."""

import pytest
from django.db import connection

from apps.nodes import sync
from apps.nodes.models import Cluster, Node

from .conftest import cluster_values, unused_port

pytestmark = pytest.mark.django_db


class WriteCounter:
    """Counts INSERT/UPDATE/DELETE statements and the rows they touched (database side)."""

    def __init__(self):
        self.statements = []
        self.rows = 0

    def __call__(self, execute, sql, params, many, context):
        result = execute(sql, params, many, context)
        verb = sql.lstrip().split(" ", 1)[0].upper()
        if verb in ("INSERT", "UPDATE", "DELETE"):
            self.statements.append(sql[:80])
            self.rows += max(context["cursor"].rowcount, 0)
        return result


def test_first_cycle_creates_the_nodes_with_quorum(cluster):
    result = sync.run_cycle(cluster.pk)
    assert result.ok, result.error
    nodes = {n.name: n for n in Node.objects.filter(cluster=cluster)}
    assert set(nodes) == {"pve1", "pve2", "pve3"}
    assert all(n.status == "online" and n.online for n in nodes.values())
    assert nodes["pve1"].maxcpu == 64 and nodes["pve1"].maxmem > 0 and nodes["pve1"].ip == "10.10.10.11"
    assert nodes["pve1"].booted_at is not None
    cluster.refresh_from_db()
    assert cluster.status == "ok" and cluster.quorate is True and cluster.last_sync_at is not None
    assert cluster.cpu_total == 64 + 64 + 32
    assert cluster.storage_total > 0
    assert result.changed["nodes"] >= 3


def test_constant_proxmox_calls_per_cycle(cluster, sim):
    sim.admin("DELETE", "/counters")
    first = sync.run_cycle(cluster.pk)
    second = sync.run_cycle(cluster.pk)
    # The first reads all three; a quiet cycle after it only /cluster/resources (the other two are
    # kept for the idle interval: tests/nodes/test_sync_calls.py).
    assert first.calls == {"GET /cluster/resources": 1, "GET /cluster/status": 1, "GET /cluster/ha/status/current": 1}
    assert second.calls == {"GET /cluster/resources": 1}
    # pvesim's own count agrees, whatever the number of guests.
    assert sim.counters()["total"] == 4


def test_a_cycle_where_nothing_changed_writes_only_the_cluster_bookkeeping(cluster, sim):
    sim.admin("POST", "/time-scale", scale=1)  # real-time uptime, as on a real cluster
    try:
        sync.run_cycle(cluster.pk)
        counter = WriteCounter()
        with connection.execute_wrapper(counter):
            result = sync.run_cycle(cluster.pk)
    finally:
        sim.admin("POST", "/time-scale", scale=20)
    assert result.ok
    assert result.changed["nodes"] == 0
    node_writes = [s for s in counter.statements if "nodes_node" in s]
    assert node_writes == []
    assert len(counter.statements) == 1 and "nodes_cluster" in counter.statements[0]


def test_powered_off_node_shows_offline_and_comes_back(cluster, sim):
    sync.run_cycle(cluster.pk)
    sim.admin("POST", "/nodes/pve3/power", state="off")
    result = sync.run_cycle(cluster.pk)
    pve3 = Node.objects.get(cluster=cluster, name="pve3")
    assert pve3.status == "offline" and pve3.online is False
    assert pve3.cpu == 0 and pve3.booted_at is None
    assert result.changed["nodes"] >= 1
    cluster.refresh_from_db()
    assert cluster.quorate is True  # 2 of 3 votes
    assert cluster.cpu_total == 128  # only online nodes count
    sim.admin("POST", "/nodes/pve3/power", state="on")
    sync.run_cycle(cluster.pk)
    assert Node.objects.get(cluster=cluster, name="pve3").status == "online"


def test_quorum_loss_is_recorded(cluster, sim):
    sync.run_cycle(cluster.pk)
    sim.admin("POST", "/nodes/pve2/power", state="off")
    sim.admin("POST", "/nodes/pve3/power", state="off")
    sync.run_cycle(cluster.pk)
    cluster.refresh_from_db()
    assert cluster.quorate is False


def test_handlers_get_the_snapshot_and_their_changes_are_counted(cluster):
    seen = []

    def handler(cluster_arg, snapshot):
        seen.append((cluster_arg.pk, len(snapshot.guests), len(snapshot.nodes), snapshot.ha_available))
        return ["a", "b"]

    def legacy(cluster_arg, resources, status, ha_status):
        seen.append(("legacy", len(resources), len(status)))
        return 1

    sync.register_handler("test-handler", handler)
    sync.register_handler("test-legacy", legacy)
    try:
        result = sync.run_cycle(cluster.pk)
    finally:
        sync._handlers.pop("test-handler")
        sync._handlers.pop("test-legacy")
    assert seen[0][0] == cluster.pk and seen[0][1] > 0 and seen[0][2] == 3
    assert seen[1][0] == "legacy" and seen[1][1] > 3
    assert result.changed["test-handler"] == 2 and result.changed["test-legacy"] == 1


def test_a_failing_handler_is_rolled_back_and_others_still_run(cluster):
    def broken(cluster_arg, snapshot):
        Node.objects.create(cluster=cluster_arg, name="ghost")
        raise RuntimeError("boom")

    sync._handlers = {"broken": broken, **sync._handlers}
    try:
        result = sync.run_cycle(cluster.pk)
    finally:
        sync._handlers.pop("broken")
    assert result.ok
    assert not Node.objects.filter(name="ghost").exists()
    assert Node.objects.filter(cluster=cluster).count() == 3


def test_removed_node_disappears(cluster):
    sync.run_cycle(cluster.pk)
    Node.objects.create(cluster=cluster, name="pve9", status="online")
    sync.run_cycle(cluster.pk)
    assert not Node.objects.filter(cluster=cluster, name="pve9").exists()


def test_unreachable_cluster_keeps_its_data_and_backs_off(cluster):
    sync.run_cycle(cluster.pk)
    Cluster.objects.filter(pk=cluster.pk).update(api_url=f"https://127.0.0.1:{unused_port()}")
    first = sync.run_cycle(cluster.pk)
    assert not first.ok and "connection refused" in first.error
    cluster.refresh_from_db()
    assert cluster.status == "unreachable" and "connection refused" in cluster.last_error
    assert cluster.failures == 1 and cluster.is_stale
    delay1 = (cluster.next_sync_at - cluster.last_attempt_at).total_seconds()
    sync.run_cycle(cluster.pk)
    cluster.refresh_from_db()
    delay2 = (cluster.next_sync_at - cluster.last_attempt_at).total_seconds()
    assert delay2 > delay1  # exponential backoff
    assert Node.objects.filter(cluster=cluster).count() == 3  # data kept, shown as stale


def test_bad_token_marks_auth_failed(cluster):
    Cluster.objects.filter(pk=cluster.pk).update(token_secret="00000000-0000-0000-0000-000000000000")
    result = sync.run_cycle(cluster.pk)
    cluster.refresh_from_db()
    assert not result.ok and cluster.status == "auth_failed"


def test_cycles_never_overlap(cluster):
    from apps.nodes import presence

    lock = presence.lock("sync", cluster.pk, 30)
    assert lock.acquire()
    try:
        result = sync.run_cycle(cluster.pk)
    finally:
        lock.release()
    assert result.skipped


def test_due_clusters_follow_next_sync_at_and_watchers(cluster, operator):
    from datetime import timedelta

    from django.utils import timezone

    from apps.nodes import presence
    from apps.nodes.tasks import due_clusters

    sync.run_cycle(cluster.pk)
    cluster.refresh_from_db()
    # Nobody watches: next sync after the idle interval.
    assert (cluster.next_sync_at - cluster.last_sync_at).total_seconds() == pytest.approx(60, abs=1)
    assert cluster.pk not in due_clusters()
    assert cluster.pk in due_clusters(now=cluster.next_sync_at + timedelta(seconds=1))
    # Someone opens a page: due as soon as the active interval passed since the last attempt.
    presence.watch([cluster.live_group], "test-channel")
    try:
        assert cluster.pk in due_clusters(now=cluster.last_attempt_at + timedelta(seconds=6))
        sync.run_cycle(cluster.pk)
        cluster.refresh_from_db()
        assert (cluster.next_sync_at - cluster.last_sync_at).total_seconds() == pytest.approx(5, abs=1)
    finally:
        presence.watch([cluster.live_group], "test-channel", present=False)
    assert presence.watcher_count(cluster.live_group) == 0
    assert timezone.now() < cluster.next_sync_at + timedelta(seconds=60)
