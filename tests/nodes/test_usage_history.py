"""Usage history of watched node and guest pages: one /cluster/metrics/export call per cluster and
minute (pvesim counts the calls), rrddata per object where the export is missing."""

from __future__ import annotations

import time

import pytest
from django.core.cache import cache

from apps.guests.models import Guest
from apps.guests.services import cached_rrd as guest_rrd
from apps.guests.services import guest_refresh
from apps.guests.views import chart_specs as guest_charts
from apps.nodes import presence, sync, usage
from apps.nodes.models import Node
from apps.nodes.rrd import cached_rrd as node_rrd
from apps.nodes.rrd import chart_specs as node_charts

pytestmark = pytest.mark.django_db

EXPORT = "/cluster/metrics/export"
CHANNEL = "test-usage-history"


def calls(sim) -> dict[str, int]:
    return {c["path"]: c["count"] for c in sim.counters()["requests"]}


def rrddata_calls(sim) -> int:
    return sum(n for path, n in calls(sim).items() if path.endswith("/rrddata"))


@pytest.fixture
def pages(cluster, sim):
    """The node page of pve1 and the guest pages of VM 101 (on pve2) and CT 200 (on pve1), watched."""
    assert sync.run_cycle(cluster.pk).ok
    node = Node.objects.get(cluster=cluster, name="pve1")
    vm = Guest.objects.get(cluster=cluster, vmid=101)
    ct = Guest.objects.get(cluster=cluster, vmid=200)
    groups = [f"node-{node.pk}", f"guest-{vm.pk}", f"guest-{ct.pk}"]
    presence.watch(groups, CHANNEL)
    sim.admin("DELETE", "/counters")
    yield node, vm, ct
    presence.watch(groups, CHANNEL, present=False)


def test_one_export_call_fills_every_watched_chart(cluster, sim, pages):
    node, vm, ct = pages
    summary = usage.refresh_usage(cluster.pk)
    assert calls(sim) == {EXPORT: 1}, calls(sim)
    assert rrddata_calls(sim) == 0
    assert summary["nodes"] == ["pve1", "pve2"]  # node-list: pve3 carries nothing watched
    assert summary["start"] >= time.time() - usage.BACKFILL - 5  # the first call: half an hour at most

    charts = node_charts(node_rrd(node.pk))
    assert charts["usage"]["x"] and any(v is not None for v in charts["usage"]["series"][0])
    assert any(v is not None for v in charts["usage"]["series"][1])  # memory %
    assert any(v is not None and v > 0 for v in charts["network"]["series"][0])  # rate from the counter
    for guest in (vm, ct):
        charts = guest_charts(guest_rrd(guest.pk))
        assert len(charts["usage"]["x"]) > 10, guest
        assert all(0 <= v <= 100 for v in charts["usage"]["series"][0] if v is not None)
        assert any(v is not None and v > 0 for v in charts["network"]["series"][1])


def test_a_second_refresh_asks_only_for_what_is_newer_and_keeps_an_hour(cluster, sim, pages):
    node, vm, ct = pages
    first = usage.refresh_usage(cluster.pk)
    second = usage.refresh_usage(cluster.pk)
    assert calls(sim) == {EXPORT: 2}
    assert second["start"] == first["newest"]  # start-time: the newest timestamp already kept
    assert second["metrics"] < first["metrics"]  # at most a generation or two, not the half hour again
    points = guest_rrd(vm.pk)["points"]
    times = [p["time"] for p in points]
    assert times == sorted(set(times))  # nothing twice

    # An hour and a half kept from before: the window drops what is older than an hour.
    old = node_rrd(node.pk)
    oldest = old["points"][0]["time"]
    seeded = [{"time": t, "cpu": 0.5, "memused": 1, "memtotal": 2} for t in range(oldest - 3600, oldest, 60)]
    cache.set(usage.series_key("node", node.pk), dict(old, points=seeded + old["points"]))
    usage.refresh_usage(cluster.pk)
    points = node_rrd(node.pk)["points"]
    assert points[-1]["time"] - points[0]["time"] < usage.WINDOW
    assert points[0]["time"] > oldest - 3600


def test_guest_refresh_reads_no_rrddata_where_the_export_serves(cluster, sim, pages):
    node, vm, ct = pages
    usage.refresh_usage(cluster.pk)
    kept = guest_rrd(vm.pk)
    guest_refresh(guest=Guest.objects.select_related("node").get(pk=vm.pk))
    assert rrddata_calls(sim) == 0
    assert guest_rrd(vm.pk)["points"] == kept["points"]


def test_nodes_older_than_9_fall_back_to_rrddata(cluster, sim, pages):
    node, vm, ct = pages
    Node.objects.filter(cluster=cluster).update(pve_version="8.4.1")
    assert usage.refresh_usage(cluster.pk) is None  # nothing for the export to do
    assert usage.enqueue_due() == []  # no export refresh queued; the node's rrddata one is
    assert presence.take_queued("rrd", node.pk)
    assert EXPORT not in calls(sim)

    from apps.nodes.rrd import refresh_rrd

    assert refresh_rrd(node.pk)  # what nodes.node_rrd_refresh does
    guest_refresh(guest=Guest.objects.select_related("node").get(pk=vm.pk))
    assert rrddata_calls(sim) == 2 and EXPORT not in calls(sim)
    assert node_charts(node_rrd(node.pk))["usage"]["x"] and guest_charts(guest_rrd(vm.pk))["usage"]["x"]


def test_a_cluster_answering_501_is_remembered_and_falls_back(pvesim_sparse, operator):
    """A Proxmox before 9.0 answers 501 for the export (pvesim's sparse mode refuses the endpoints
    newer than 8.4)."""
    from apps.nodes.services import cluster_create

    pvesim_sparse.reset()
    if not any(path == EXPORT for path in _refused(pvesim_sparse)):
        pytest.skip("this pvesim's sparse mode still serves /cluster/metrics/export")
    cluster = cluster_create(user=operator, name="old", api_url=pvesim_sparse.url, token_id=pvesim_sparse.token_id,
                             token_secret=pvesim_sparse.token_secret, tls_mode="pin",
                             fingerprint=pvesim_sparse.fingerprint)
    assert sync.run_cycle(cluster.pk).ok
    node = Node.objects.get(cluster=cluster, name="pve1")
    vm = Guest.objects.get(cluster=cluster, vmid=101)
    presence.watch([f"node-{node.pk}", f"guest-{vm.pk}"], CHANNEL)
    try:
        pvesim_sparse.admin("DELETE", "/counters")
        assert usage.refresh_usage(cluster.pk) == {"missing": True}
        assert rrddata_calls(pvesim_sparse) == 1 and guest_rrd(vm.pk)["points"]  # the open guest page's hour
        assert usage.refresh_usage(cluster.pk) is None  # remembered: no second try
        assert calls(pvesim_sparse)[EXPORT] == 1
        assert usage.enqueue_due() == [] and presence.take_queued("rrd", node.pk)
    finally:
        presence.watch([f"node-{node.pk}", f"guest-{vm.pk}"], CHANNEL, present=False)


def _refused(sim) -> list[str]:
    sim.admin("DELETE", "/counters")
    try:
        sim.api().cluster.metrics.export.get()
    except Exception:
        pass
    return [c["path"] for c in sim.counters()["requests"] if not c["implemented"]]


def test_nothing_is_fetched_when_nobody_watches(cluster, sim):
    assert sync.run_cycle(cluster.pk).ok
    sim.admin("DELETE", "/counters")
    assert usage.enqueue_due() == []
    assert usage.refresh_usage(cluster.pk) is None
    assert sim.counters()["total"] == 0


def test_a_watched_page_queues_one_refresh_per_cluster(cluster, sim, pages):
    assert usage.enqueue_due() == [cluster.pk]
    assert usage.enqueue_due() == []  # queued, or running in the session's worker: not twice
    # queueing asks Proxmox nothing; the worker, when one runs, makes the one export call
    assert set(calls(sim)) <= {EXPORT} and calls(sim).get(EXPORT, 0) <= 1, calls(sim)


def test_a_page_opened_later_gets_its_half_hour_in_the_next_call(cluster, sim, pages):
    first = usage.refresh_usage(cluster.pk)
    later = Guest.objects.get(cluster=cluster, vmid=100)
    presence.watch([f"guest-{later.pk}"], CHANNEL)
    try:
        assert guest_rrd(later.pk) is None
        again = usage.refresh_usage(cluster.pk)
        assert again["start"] < first["newest"] - 1000  # back to PullMetric's half hour, in the same one call
        assert len(guest_rrd(later.pk)["points"]) > 100
        assert calls(sim) == {EXPORT: 2}
    finally:
        presence.watch([f"guest-{later.pk}"], CHANNEL, present=False)


def test_finding_the_open_pages_reads_only_them(cluster, sim, pages, django_assert_num_queries):
    """Beat looks every 2 s: it reads the open pages from presence's index, two queries whatever the
    number of guests, each limited to the open pages' rows, never every guest of every cluster."""
    node, vm, ct = pages
    with django_assert_num_queries(2) as captured:
        found = usage.watched_objects([cluster.pk])
    for table in ("nodes_node", "guests_guest"):
        sql = next(q["sql"] for q in captured.captured_queries if f'FROM "{table}"' in q["sql"])
        assert f'"{table}"."id" IN' in sql, sql
    assert {(w.kind, w.pk, w.pid) for w in found[cluster.pk]} == {
        ("node", node.pk, "node/pve1"), ("guest", vm.pk, "qemu/101"), ("guest", ct.pk, "lxc/200")}
    presence.watch([f"guest-{vm.pk}"], CHANNEL, present=False)  # that page closed
    assert ("guest", vm.pk) not in {(w.kind, w.pk) for w in usage.watched_objects([cluster.pk])[cluster.pk]}
