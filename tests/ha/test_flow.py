"""HA writes end to end: API -> operation -> Celery worker -> pvesim -> sync. A guest put under HA
becomes an HA resource; draining a node moves its HA guests where the CRM would recover them and
keeps them there; bringing it back returns them."""

import pytest

from apps.guests.models import Guest
from apps.ha.models import HaClusterState, HaResource

from .conftest import finished, sync_until, wait_for

pytestmark = pytest.mark.django_db(transaction=True)


def run(api, url, body):
    op = api.post(url, body, expect=202)
    done = wait_for(lambda: finished(op["id"]), timeout=60)
    assert done.status == "succeeded", (done.error, [e.message for e in done.events.order_by("seq")])
    return done


def test_put_under_ha_then_drain_and_bring_back(sim_cluster, celery_worker, api, pvesim, fast_clock):
    guest = Guest.objects.get(cluster=sim_cluster, vmid=101)
    run(api, "/api/v1/ha/resources/set/", {"guests": [guest.pk], "state": "started", "max_restart": 2})
    sync_until(sim_cluster, lambda: HaResource.objects.filter(sid="vm:101", max_restart=2, node="pve2").exists())

    pve1 = sim_cluster.nodes.get(name="pve1")
    op = run(api, f"/api/v1/ha/clusters/{sim_cluster.pk}/maintenance/", {"node": "pve1", "enable": True})
    assert sorted(op.result["moved"]) == ["ct:200", "vm:100"]
    messages = [e.message for e in op.events.order_by("seq")]
    assert any(m.startswith("vm:100 → pve2") and "web-prefers-pve1" in m for m in messages), "\n".join(messages)
    sync_until(sim_cluster, lambda: not HaResource.objects.filter(node="pve1").exists(), timeout=60)
    assert HaClusterState.objects.get(cluster=sim_cluster).maintenance["pve1"]["vm:100"]["target"] == "pve2"
    assert HaResource.objects.get(sid="vm:100").failback is False  # held off: the CRM does not pull it back
    api.post(f"/api/v1/ha/clusters/{sim_cluster.pk}/maintenance/", {"node": "pve1", "enable": True}, expect=400)

    run(api, f"/api/v1/ha/clusters/{sim_cluster.pk}/maintenance/", {"node": pve1.name, "enable": False})
    sync_until(sim_cluster, lambda: HaResource.objects.filter(sid="vm:100", node="pve1", failback=True).exists())
    assert "pve1" not in HaClusterState.objects.get(cluster=sim_cluster).maintenance


def test_rule_saved_through_proxmox_and_writes_refused_without_quorum(sim_cluster, celery_worker, api, pvesim):
    from apps.ha.models import HaRule
    from apps.operations.models import Operation

    # What only Proxmox's feasibility check knows comes back in its words, and nothing is saved.
    op = api.post("/api/v1/ha/rules/", {"cluster": sim_cluster.pk, "rule": "web-apart", "type": "resource-affinity",
                                        "resources": ["vm:100", "ct:200"], "affinity": "negative"}, expect=202)
    failed = wait_for(lambda: finished(op["id"]), timeout=60)
    assert failed.status == "failed" and "Rule 'web-apart' is invalid" in failed.error
    assert not HaRule.objects.filter(rule="web-apart").exists()
    run(api, "/api/v1/ha/rules/", {"cluster": sim_cluster.pk, "rule": "dns-not-pve1", "type": "node-affinity",
                                   "resources": ["ct:200"], "nodes": {"pve2": 1, "pve3": 1}, "strict": True})
    rule = HaRule.objects.get(cluster=sim_cluster, rule="dns-not-pve1")  # re-read by the operation itself
    assert rule.nodes == {"pve2": 1, "pve3": 1} and rule.strict
    assert rule.sentence() == "ct:200: only pve2 or pve3"

    guest = Guest.objects.get(cluster=sim_cluster, vmid=104)
    try:
        for node in ("pve2", "pve3"):  # pve1, which answers the API, is left alone: no quorum there
            pvesim.admin("POST", f"/nodes/{node}/partition", partitioned=1)
        op = api.post("/api/v1/ha/resources/set/", {"guests": [guest.pk]}, expect=202)
        done = wait_for(lambda: finished(op["id"]), timeout=60)
    finally:
        for node in ("pve2", "pve3"):
            pvesim.admin("POST", f"/nodes/{node}/partition", partitioned=0)
    assert done.status == "failed" and "no quorum" in done.error  # Proxmox's reason, as it gave it
    assert not HaResource.objects.filter(sid="vm:104").exists()
    assert Operation.objects.filter(status="failed").count() == 2
