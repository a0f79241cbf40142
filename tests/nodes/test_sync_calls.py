"""Proxmox calls of the sync: /cluster/status and the HA status are read at the idle pace while
nothing they report may have changed, and in the very cycle that shows a change (pvesim counts)."""

from __future__ import annotations

import pytest

from apps.nodes import sync
from apps.nodes.models import Node
from tests.fixtures import wait_for

pytestmark = pytest.mark.django_db


STATUS, HA = "/cluster/status", "/cluster/ha/status/current"


def paths(sim) -> dict[str, int]:
    return {c["path"]: c["count"] for c in sim.counters()["requests"]}


def test_a_watched_quiet_minute_costs_at_most_15_calls(cluster, sim):
    assert sync.run_cycle(cluster.pk).ok  # reads all three, keeps status and HA status
    sim.admin("DELETE", "/counters")
    for _ in range(12):  # one minute of cycles at SYNC_INTERVAL_ACTIVE (5 s)
        assert sync.run_cycle(cluster.pk).ok
    counted = paths(sim)
    assert sim.counters()["total"] <= 15, counted
    assert counted.get("/cluster/resources") == 12
    assert STATUS not in counted and HA not in counted


def test_a_node_failure_is_read_in_the_cycle_that_shows_it(cluster, sim):
    assert sync.run_cycle(cluster.pk).ok
    assert sync.run_cycle(cluster.pk).calls == {"GET /cluster/resources": 1}
    sim.admin("POST", "/nodes/pve3/power", state="off")
    result = sync.run_cycle(cluster.pk)
    assert result.calls["GET /cluster/status"] == 1 and result.calls["GET /cluster/ha/status/current"] == 1
    pve3 = Node.objects.get(cluster=cluster, name="pve3")
    assert pve3.online is False and pve3.status == "offline"
    # While it is down, HA is at work: both are read every cycle.
    assert sync.run_cycle(cluster.pk).calls.get("GET /cluster/status") == 1


def test_an_ha_operation_running_reads_ha_status_every_cycle(cluster, sim, operator):
    from apps.operations.models import Operation

    assert sync.run_cycle(cluster.pk).ok
    Operation.objects.create(kind="ha.resource_move", cluster_id=cluster.pk, status="running", created_by=operator)
    assert sync.run_cycle(cluster.pk).calls.get("GET /cluster/ha/status/current") == 1
    Operation.objects.filter(cluster_id=cluster.pk).update(status="succeeded")
    assert sync.run_cycle(cluster.pk).calls == {"GET /cluster/resources": 1}


def test_a_partition_is_read_in_the_cycle_that_shows_it(cluster, sim):
    """Proxmox lists a node cut off from the answering node's corosync partition as offline in
    /cluster/resources (pvesim does too), so a partition is not left to the idle pace."""
    assert sync.run_cycle(cluster.pk).ok
    assert sync.run_cycle(cluster.pk).calls == {"GET /cluster/resources": 1}
    try:
        sim.admin("POST", "/nodes/pve3/partition", partitioned=1)
        result = sync.run_cycle(cluster.pk)
        assert result.calls.get("GET /cluster/status") == 1 and result.calls.get("GET /cluster/ha/status/current") == 1
        pve3 = Node.objects.get(cluster=cluster, name="pve3")
        assert pve3.status == "offline" and pve3.online is False
        cluster.refresh_from_db()
        assert cluster.quorate is True  # pve1 and pve2: 2 of 3 votes
    finally:
        sim.admin("POST", "/nodes/pve3/partition", partitioned=0)
    assert sync.run_cycle(cluster.pk).calls.get("GET /cluster/status") == 1  # healed: read once more
    assert Node.objects.get(cluster=cluster, name="pve3").status == "online"
    # Back to one call a cycle once all is at rest. On a slow machine the partition lasts long
    # enough in pvesim's time for HA to fence pve3 and recover its guests, and every cycle reads
    # both while that goes on (as it should), so this waits for rest instead of expecting it next.
    wait_for(lambda: sync.run_cycle(cluster.pk).calls == {"GET /cluster/resources": 1}, timeout=90, interval=0.5)


def test_a_fresh_cycle_or_a_stale_mark_reads_all_three(cluster, sim):
    """An operation's end (run_cycle(fresh=True), refresh_now) and a forced sync (enqueue_sync(force=
    True): "Sync now", slow_reads_stale) read what only /cluster/status and the HA status report."""
    assert sync.run_cycle(cluster.pk).ok
    assert len(sync.run_cycle(cluster.pk, fresh=True).calls) == 3
    assert sync.run_cycle(cluster.pk).calls == {"GET /cluster/resources": 1}  # kept again from the fresh one
    sync.slow_reads_stale(cluster.pk)
    assert len(sync.run_cycle(cluster.pk).calls) == 3
    assert sync.run_cycle(cluster.pk).calls == {"GET /cluster/resources": 1}
    assert len(sync.refresh_now(cluster.pk).calls) == 3


def test_a_stale_mark_during_a_cycle_is_not_cleared_by_that_cycle(cluster, sim, monkeypatch):
    """Reads that began before the mark are kept but do not count as fresh for the next cycle."""
    assert sync.run_cycle(cluster.pk).ok
    real = sync.pve_cluster.ha_status

    def ha_status_then_mark(client):
        answer = real(client)
        sync.slow_reads_stale(cluster.pk)  # e.g. an HA operation ended while this cycle was reading
        return answer

    monkeypatch.setattr(sync.pve_cluster, "ha_status", ha_status_then_mark)
    assert len(sync.run_cycle(cluster.pk, fresh=True).calls) == 3
    monkeypatch.setattr(sync.pve_cluster, "ha_status", real)
    assert len(sync.run_cycle(cluster.pk).calls) == 3


def test_without_hastate_in_resources_the_ha_status_is_read_every_cycle(cluster, sim, monkeypatch):
    """A schema-minimal /cluster/resources (hastate is optional there) cannot show an HA failure:
    while HA manages services, their status is read every cycle."""
    real = sync.pve_cluster.resources
    monkeypatch.setattr(sync.pve_cluster, "resources", lambda client, *a, **kw: [
        {k: v for k, v in item.items() if k != "hastate"} for item in real(client, *a, **kw)])
    assert sync.run_cycle(cluster.pk).ok
    assert sync.run_cycle(cluster.pk).calls.get("GET /cluster/ha/status/current") == 1


def test_a_targeted_refresh_reads_the_node_list_and_hands_it_to_the_named_handlers(cluster, sim):
    """An HA operation's end (refresh_handlers_now): nodes only from /cluster/resources (small at any
    number of guests), the cluster and HA status, given to the HA handler alone; the next cycle reads
    the two again (what it kept is older)."""
    assert sync.run_cycle(cluster.pk).ok
    seen = []
    sync.register_handler("test-seen", lambda c, snapshot: seen.append(
        {i["type"] for i in snapshot.resources}) or [])
    try:
        sim.admin("DELETE", "/counters")
        result = sync.refresh_handlers_now(cluster.pk, ("test-seen",))
        assert result.calls == {"GET /cluster/resources": 1, "GET /cluster/status": 1,
                                "GET /cluster/ha/status/current": 1}
        assert seen == [{"node"}]
        assert sim.counters()["total"] == 3
        assert len(sync.run_cycle(cluster.pk).calls) == 3
    finally:
        sync._handlers.pop("test-seen")
