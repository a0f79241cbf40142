"""The HA sync against pvesim: state and resources follow Proxmox, and a node failure becomes a
timeline (node lost -> fence -> recovery -> started elsewhere) explained before it happens."""

import pytest

from apps.ha.explain import explain, predict_failover
from apps.ha.models import HaClusterState, HaEvent, HaResource
from apps.nodes import sync as node_sync

from .conftest import power, sync, sync_until

pytestmark = pytest.mark.django_db


@pytest.mark.sparse
def test_first_cycle_saves_quorum_master_lrms_and_resources(sim_cluster):
    state = HaClusterState.objects.get(cluster=sim_cluster)
    assert state.quorate is True and state.votes == 3 and state.expected_votes == 3 and state.votes_needed == 2
    assert state.master_node == "pve1"
    assert set(state.lrms) == {"pve1", "pve2", "pve3"}
    resources = {r.sid: r for r in HaResource.objects.filter(cluster=sim_cluster)}
    assert set(resources) == {"vm:100", "ct:200"}
    assert resources["vm:100"].node == "pve1" and resources["vm:100"].guest.vmid == 100
    assert not HaEvent.objects.exists()  # the first look is the present, not history


def test_quiet_cycle_writes_nothing_and_reads_only_resources(sim_cluster):
    result = sync(sim_cluster)
    assert result.changed["ha"] == 0
    # Nothing HA reports may have changed (all nodes online, services at rest): the cluster and HA
    # status of the first cycle are kept for the idle interval.
    assert result.calls == {"GET /cluster/resources": 1}


def test_node_failure_is_recorded_in_order_and_the_prediction_holds(sim_cluster, pvesim, pve, fast_clock):
    from apps.ha.services import ha_refresh
    from apps.proxmox import ha as pve_ha

    # Steer vm:100 to pve3 after pve1, although pve2 is as free: the rule, not the load, decides.
    pve_ha.rule_update(pve, "web-prefers-pve1", type="node-affinity", resources=["vm:100"],
                       nodes={"pve1": 2, "pve3": 1, "pve2": 0})
    ha_refresh(cluster=sim_cluster)
    vm = HaResource.objects.get(cluster=sim_cluster, sid="vm:100")
    predicted = explain(vm)
    assert predicted.rule == "web-prefers-pve1" and predicted.target == "pve3"
    assert any("priority 1" in r for r in predicted.reasons)
    plan = {sid: p.target for sid, p in predict_failover(sim_cluster, "pve1").items()}
    assert plan["vm:100"] == "pve3" and plan["ct:200"] in ("pve2", "pve3")
    pvesim.admin("POST", "/local-node", node="pve2")  # the API answers from a node that survives
    try:
        power(pvesim, "pve1", False)
        sync_until(sim_cluster, lambda: HaResource.objects.filter(
            cluster=sim_cluster, sid="vm:100", node="pve3", state="started").exists(), timeout=40)
        events = list(HaEvent.objects.filter(cluster=sim_cluster, sid__in=["", "vm:100"]).order_by("at", "id"))
        kinds = [e.kind for e in events]
        order = [kinds.index(k) for k in ("node_lost", "fence", "recovery", "started")]
        assert order == sorted(order), kinds
        started = events[kinds.index("started")]
        assert started.node == "pve3" and "web-prefers-pve1" in started.why  # where explain said
        assert all(e.at for e in events)
        ct = HaEvent.objects.filter(sid="ct:200", kind="recovery").first()
        assert ct is not None and ct.target == plan["ct:200"]  # the prediction is what the CRM did
        assert HaEvent.objects.filter(kind="node_lost", node="pve1").count() == 1
    finally:
        power(pvesim, "pve1", True)
    sync_until(sim_cluster, lambda: HaEvent.objects.filter(kind="node_back", node="pve1").exists())


def test_partition_loses_quorum_and_writes_are_refused(sim_cluster, pvesim, pve):
    from apps.proxmox import ProxmoxError
    from apps.proxmox import ha as pve_ha

    try:
        for node in ("pve2", "pve3"):
            pvesim.admin("POST", f"/nodes/{node}/partition", partitioned=1)
        sync_until(sim_cluster, lambda: HaClusterState.objects.get(cluster=sim_cluster).quorate is False)
        lost = HaEvent.objects.get(cluster=sim_cluster, kind="quorum_lost")
        assert "1 of 3 votes" in lost.message and "2 needed" in lost.message
        with pytest.raises(ProxmoxError, match="no quorum"):
            pve_ha.resource_update(pve, "vm:100", state="stopped")
    finally:
        for node in ("pve2", "pve3"):
            pvesim.admin("POST", f"/nodes/{node}/partition", partitioned=0)
    sync_until(sim_cluster, lambda: HaEvent.objects.filter(kind="quorum_regained").exists())
    assert node_sync.registered_handlers().index("ha") > node_sync.registered_handlers().index("guests")


def test_events_are_kept_for_the_configured_time(sim_cluster, settings):
    from datetime import timedelta

    from django.utils import timezone

    from apps.ha.services import ha_event_prune

    settings.HA_EVENT_RETENTION_DAYS = 30
    now = timezone.now()
    for days in (31, 29):
        HaEvent.objects.create(cluster=sim_cluster, at=now - timedelta(days=days), kind="node_lost", node="pve3",
                               message=f"{days} days ago")
    assert ha_event_prune(now=now) == 1
    assert list(HaEvent.objects.values_list("message", flat=True)) == ["29 days ago"]
