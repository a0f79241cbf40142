"""The HA API: scoped reads (tenants see their guests' HA state only, 404 otherwise), rules
validated with field errors before anything is queued, writes answered 202 with an operation."""

import pytest

from apps.ha.models import HaEvent, HaResource, HaRule
from apps.ha.services import ha_refresh
from apps.operations.models import Operation

pytestmark = pytest.mark.django_db


@pytest.fixture
def refreshed(sim_cluster):
    ha_refresh(cluster=sim_cluster)
    return sim_cluster


@pytest.mark.sparse
def test_operator_reads_status_resources_rules_replication_and_ceph(refreshed, api, pvesim):
    full = getattr(pvesim, "mode", "full") == "full"  # a sparse Proxmox may leave optional fields out
    state = api.get(f"/api/v1/ha/clusters/{refreshed.pk}/")
    assert state["quorate"] is True and state["votes"] == 3 and state["master_node"] == "pve1"
    assert set(state["lrms"]) == {"pve1", "pve2", "pve3"}
    assert state["ceph"]["status"] == "HEALTH_OK" and state["ceph"]["osds_up"] == state["ceph"]["osds"]
    sids = [r["sid"] for r in api.get("/api/v1/ha/resources/")["results"]]
    assert sids == ["ct:200", "vm:100"]
    rules = api.get("/api/v1/ha/rules/")["results"]
    assert rules[0]["rule"] == "web-prefers-pve1" and rules[0]["type"] == "node-affinity"
    if full:
        assert rules[0]["nodes"] == {"pve1": 2, "pve2": 1, "pve3": 0}
        assert "prefer pve1, then pve2, then pve3" in rules[0]["sentence"]
    jobs = api.get("/api/v1/ha/replication/")["results"]
    assert [j["job_id"] for j in jobs] == ["201-0"] and jobs[0]["vmid"] == 201
    if full:
        assert jobs[0]["target"] == "pve1" and jobs[0]["source"] == "pve3"
        assert jobs[0]["fail_count"] == 0 and jobs[0]["last_sync"]


def test_explain_names_rule_priorities_and_load(refreshed, api):
    vm = HaResource.objects.get(sid="vm:100")
    answer = api.get(f"/api/v1/ha/resources/{vm.pk}/explain/")
    assert answer["rule"] == "web-prefers-pve1" and answer["target"] == "pve2"
    choices = {c["node"]: c for c in answer["choices"]}
    assert choices["pve1"]["online"] is False and choices["pve2"]["priority"] == 1 and choices["pve2"]["chosen"]


def test_warnings_name_local_storage_and_single_node_gpus(refreshed, api, pve):
    from apps.guests.models import Guest
    from apps.proxmox import ha as pve_ha

    pve_ha.resource_add(pve, "ct:201")  # proxy-01: local ZFS on pve3, replicated to pve1
    pve_ha.resource_add(pve, "vm:102")  # ml-train-01: gpu-l40s exists on pve1 only
    from tests.fixtures import sync

    sync(refreshed)
    assert not Guest.objects.get(vmid=201).config  # never opened: the refresh reads what HA needs
    from apps.gpus.services import gpu_inventory_refresh

    gpu_inventory_refresh(cluster=refreshed)
    ha_refresh(cluster=refreshed)
    warnings = [w["text"] for w in api.get(f"/api/v1/ha/clusters/{refreshed.pk}/")["warnings"]]
    assert any("ct:201" in w and "replicated" in w for w in warnings), warnings
    assert any("vm:102" in w and "gpu-l40s" in w and "only on pve1" in w for w in warnings), warnings


def test_tenants_see_only_their_guests_ha_state(refreshed, tenants, api_for):
    acme, globex = api_for(tenants["acme"]), api_for(tenants["globex"])
    vm = HaResource.objects.get(sid="vm:100")
    assert [r["sid"] for r in acme.get("/api/v1/ha/resources/")["results"]] == ["ct:200", "vm:100"]
    assert globex.get("/api/v1/ha/resources/")["results"] == []
    globex.get(f"/api/v1/ha/resources/{vm.pk}/", expect=404)
    globex.get(f"/api/v1/ha/resources/{vm.pk}/explain/", expect=404)
    globex.post(f"/api/v1/ha/resources/{vm.pk}/remove/", expect=404)
    # Cluster-wide HA (quorum, rules, other guests) is the operators' and auditors'.
    assert acme.get("/api/v1/ha/clusters/")["results"] == []
    acme.get(f"/api/v1/ha/clusters/{refreshed.pk}/", expect=404)
    assert acme.get("/api/v1/ha/rules/")["results"] == []
    # proxy-01 (201) is globex's: its replication job is theirs to see, not acme's.
    assert [j["job_id"] for j in globex.get("/api/v1/ha/replication/")["results"]] == ["201-0"]
    assert acme.get("/api/v1/ha/replication/")["results"] == []
    HaEvent.objects.create(cluster=refreshed, at=vm.updated, kind="fence", sid="vm:100", guest=vm.guest,
                           tenant_id=vm.guest.tenant_id, message="vm:100 was fenced")
    HaEvent.objects.create(cluster=refreshed, at=vm.updated, kind="node_lost", node="pve1", message="Node pve1 left")
    assert [e["kind"] for e in acme.get("/api/v1/ha/events/")["results"]] == ["fence"]
    assert globex.get("/api/v1/ha/events/")["results"] == []
    # Seen but not theirs to change: 403, and nothing queued.
    acme.post("/api/v1/ha/resources/set/", {"guests": [vm.guest_id]}, expect=403)
    acme.post(f"/api/v1/ha/resources/{vm.pk}/remove/", expect=403)
    assert not Operation.objects.exists()


def test_events_filter_by_cluster_guest_and_kind(refreshed, api):
    vm = HaResource.objects.get(sid="vm:100")
    for kind in ("node_lost", "fence", "recovery", "started"):
        HaEvent.objects.create(cluster=refreshed, at=vm.updated, kind=kind, sid="" if kind == "node_lost" else "vm:100",
                               guest=None if kind == "node_lost" else vm.guest, message=kind)
    assert len(api.get(f"/api/v1/ha/events/?cluster={refreshed.pk}")["results"]) == 4
    assert {e["kind"] for e in api.get(f"/api/v1/ha/events/?guest={vm.guest_id}")["results"]} == {
        "fence", "recovery", "started"}
    assert [e["kind"] for e in api.get("/api/v1/ha/events/?kind=fence&kind=node_lost&ordering=at")["results"]] == [
        "node_lost", "fence"]
    api.get("/api/v1/ha/events/?kind=nonsense", expect=400)


BAD_RULES = [
    ({"rule": "x", "type": "node-affinity", "resources": ["vm:100"], "nodes": {"pve1": 1}}, "rule"),
    ({"rule": "web-two", "type": "node-affinity", "resources": ["vm:101"], "nodes": {"pve1": 1}}, "resources"),
    ({"rule": "web-two", "type": "node-affinity", "resources": ["ct:200"], "nodes": {"pve9": 1}}, "nodes"),
    ({"rule": "web-two", "type": "node-affinity", "resources": ["vm:100"], "nodes": {"pve2": 1}}, "resources"),
    ({"rule": "apart", "type": "resource-affinity", "resources": ["vm:100"], "affinity": "negative"}, "resources"),
    ({"rule": "apart", "type": "resource-affinity", "resources": ["vm:100", "ct:200"]}, "affinity"),
    ({"rule": "apart", "type": "colocation", "resources": ["vm:100", "ct:200"]}, "type"),
    ({"rule": "web-prefers-pve1", "type": "node-affinity", "resources": ["ct:200"], "nodes": {"pve2": 1}}, "rule"),
]


def test_bad_rules_are_field_errors_and_nothing_is_queued(refreshed, api):
    for body, field in BAD_RULES:
        errors = api.post("/api/v1/ha/rules/", {"cluster": refreshed.pk, **body}, expect=400)["errors"]
        assert field in errors and errors[field][0], (body, errors)
    rule = HaRule.objects.get(rule="web-prefers-pve1")
    errors = api.patch(f"/api/v1/ha/rules/{rule.pk}/", {"nodes": {"pve1": -1}}, expect=400)["errors"]
    assert "nodes" in errors
    assert not Operation.objects.exists()


def test_rule_writes_are_operations_and_operator_only(refreshed, api, tenants, api_for):
    body = {"cluster": refreshed.pk, "rule": "keep-apart", "type": "resource-affinity",
            "resources": ["vm:100", "ct:200"], "affinity": "negative"}
    api_for(tenants["acme"]).post("/api/v1/ha/rules/", body, expect=403)  # they see the cluster, may not change HA
    op = api.post("/api/v1/ha/rules/", body, expect=202)
    assert op["kind"] == "ha.rule_save" and Operation.objects.get(pk=op["id"]).task_kwargs["rule"]["rule"] == "keep-apart"
    rule = HaRule.objects.get(rule="web-prefers-pve1")
    api_for(tenants["acme"]).delete(f"/api/v1/ha/rules/{rule.pk}/", expect=404)
    assert api.delete(f"/api/v1/ha/rules/{rule.pk}/", expect=202)["kind"] == "ha.rule_delete"


def test_list_queries_stay_constant(refreshed, api):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    vm = HaResource.objects.get(sid="vm:100")

    def counts():
        out = {}
        for url in ("/api/v1/ha/resources/", "/api/v1/ha/events/", "/api/v1/ha/rules/", "/api/v1/ha/replication/"):
            with CaptureQueriesContext(connection) as ctx:
                api.get(url)
            out[url] = len(ctx.captured_queries)
        return out

    HaEvent.objects.create(cluster=refreshed, at=vm.updated, kind="node_lost", node="pve1", message="lost")
    before = counts()
    for n in range(20):
        HaEvent.objects.create(cluster=refreshed, at=vm.updated, kind="started", sid="vm:100", guest=vm.guest,
                               node="pve1", message=f"started {n}")
    HaResource.objects.create(cluster=refreshed, sid="vm:101", vmid=101, guest=vm.guest.__class__.objects.get(vmid=101))
    assert counts() == before
