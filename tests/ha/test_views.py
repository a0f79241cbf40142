"""HA pages: the cluster panel (quorum, nodes, HA guests with failover targets, rules, replication,
Ceph, timeline, warnings), the guest page's HA panel per viewer, the rule editor's field errors."""

import pytest

from apps.ha.models import HaEvent, HaResource
from apps.ha.services import ha_refresh
from apps.operations.models import Operation

pytestmark = pytest.mark.django_db


@pytest.fixture
def refreshed(sim_cluster):
    ha_refresh(cluster=sim_cluster)
    return sim_cluster


def test_ha_page_shows_quorum_nodes_guests_rules_replication_ceph_and_timeline(refreshed, client):
    vm = HaResource.objects.get(sid="vm:100")
    HaEvent.objects.create(cluster=refreshed, at=vm.updated, kind="recovery", sid="vm:100", guest=vm.guest,
                           node="pve1", target="pve2", message="vm:100 recovered from fenced node pve1 to pve2",
                           why="rule web-prefers-pve1 gives pve2 priority 1")
    html = client.get("/ha/").content.decode()
    assert f'id="ha-cluster-{refreshed.pk}"' in html and f"ha-{refreshed.pk}" in html  # panel + live group
    assert "quorate" in html and "3 of 3 votes · 2 needed" in html
    assert html.count('class="card ha-node') == 3 and "watchdog active" in html
    assert "→ <b>pve2</b>" in html and "web-prefers-pve1" in html  # where vm:100 would go
    assert "prefer pve1, then pve2, then pve3" in html
    assert "201-0" in html and "pve3 → pve1" in html and "HEALTH_OK" in html
    assert 'class="timeline"' in html and "recovered from fenced node pve1 to pve2" in html
    assert "why pve2: rule web-prefers-pve1" in html
    assert "Drain (maintenance)" in html and "data-confirm" in html


def test_tenants_get_no_ha_page_but_see_their_guests_ha_panel(refreshed, tenants, client):
    from django.test import Client

    acme = Client()
    acme.force_login(tenants["acme"])
    assert acme.get("/ha/").status_code == 403
    vm = HaResource.objects.get(sid="vm:100")
    html = acme.get(vm.guest.get_absolute_url()).content.decode()
    assert "High availability" in html and "vm:100 on pve1" in html
    assert "Put under HA" not in html and "Remove from HA" not in html  # operators' actions
    globex = Client()
    globex.force_login(tenants["globex"])
    assert globex.get(f"/ha/guests/{vm.guest_id}/").status_code == 404
    assert globex.post(f"/ha/guests/{vm.guest_id}/", {"state": "stopped"}).status_code == 404
    operator_html = client.get(vm.guest.get_absolute_url()).content.decode()
    assert "Change HA options" in operator_html and "Remove from HA" in operator_html
    assert "restarts on <b>pve2</b>" in operator_html


def test_guest_form_queues_an_operation_and_reports_field_errors(refreshed, client):
    from apps.guests.models import Guest

    guest = Guest.objects.get(cluster=refreshed, vmid=101)
    bad = client.post(f"/ha/guests/{guest.pk}/", {"state": "started", "max_restart": 99, "max_relocate": 1},
                      HTTP_HX_REQUEST="true")
    assert bad.status_code == 200 and "Ensure this value is less than or equal to 10" in bad.content.decode()
    assert not Operation.objects.exists()
    ok = client.post(f"/ha/guests/{guest.pk}/", {"state": "started", "max_restart": 2, "max_relocate": 1,
                                                 "failback": "on"}, HTTP_HX_REQUEST="true")
    op = Operation.objects.get()
    assert ok.status_code == 200 and op.kind == "ha.resource_set" and op.task_kwargs["sids"] == ["vm:101"]
    assert op.task_kwargs["max_restart"] == 2


def test_rule_editor_names_the_bad_field(refreshed, client):
    page = client.get(f"/ha/clusters/{refreshed.pk}/rules/add/").content.decode()
    assert 'name="prio_pve1"' in page and 'value="vm:100"' in page
    html = client.post(f"/ha/clusters/{refreshed.pk}/rules/add/", {
        "rule": "db-pref", "type": "node-affinity", "resources": ["vm:100"], "prio_pve2": "1"}).content.decode()
    assert "already in another node-affinity rule: vm:100 (web-prefers-pve1)" in html
    html = client.post(f"/ha/clusters/{refreshed.pk}/rules/add/", {
        "rule": "db-pref", "type": "node-affinity", "resources": ["ct:200"]}).content.decode()
    assert "choose at least one node" in html
    assert not Operation.objects.exists()


def test_draining_a_lost_node_is_refused_with_the_reason(refreshed, client, pvesim):
    from tests.fixtures import sync

    pvesim.admin("POST", "/local-node", node="pve2")
    pvesim.admin("POST", "/nodes/pve3/power", state="off")
    sync(refreshed)
    pve3 = refreshed.nodes.get(name="pve3")
    html = client.post(f"/ha/nodes/{pve3.pk}/maintenance/", {"enable": "1"}, HTTP_HX_REQUEST="true").content.decode()
    assert "node pve3 is offline since" in html and "HA cannot act on it" in html
    assert not Operation.objects.exists()
    page = client.get("/ha/").content.decode()
    assert "lost at" in page and "no HA guest to fence" in page  # pve3 carried none


def test_bulk_and_move_forms_queue_operations(refreshed, client):
    from apps.guests.models import Guest

    page = client.get("/ha/").content.decode()
    web02, db01 = Guest.objects.get(vmid=101), Guest.objects.get(vmid=104)
    assert "Put guests under HA" in page and f'value="{web02.pk}"' in page
    bad = client.post("/ha/guests/bulk/", {"state": "started", "max_restart": 1, "max_relocate": 1},
                      HTTP_HX_REQUEST="true").content.decode()
    assert "choose at least one guest" in bad and not Operation.objects.exists()
    client.post("/ha/guests/bulk/", {"guests": [web02.pk, db01.pk], "state": "stopped", "max_restart": 1,
                                     "max_relocate": 1}, HTTP_HX_REQUEST="true")
    op = Operation.objects.get(kind="ha.resource_set")
    assert op.task_kwargs["sids"] == ["vm:101", "vm:104"] and op.task_kwargs["state"] == "stopped"
    vm = HaResource.objects.get(sid="vm:100")
    html = client.post(f"/ha/guests/{vm.guest_id}/move/", {"node": "pve1"}, HTTP_HX_REQUEST="true").content.decode()
    assert "already runs on pve1" in html
    client.post(f"/ha/guests/{vm.guest_id}/move/", {"node": "pve3", "relocate": "on"}, HTTP_HX_REQUEST="true")
    move = Operation.objects.get(kind="ha.resource_move")
    assert move.task_kwargs == {"sid": "vm:100", "node": "pve3", "relocate": True}


def test_dashboard_counts_ha_guests_for_operators_only(refreshed, tenants, client):
    from django.test import Client

    html = client.get("/").content.decode()
    assert 'data-stat="ha">2 / 2<' in html
    HaResource.objects.filter(sid="vm:100").update(state="fence")
    assert "1 in recovery" in client.get("/").content.decode()
    acme = Client()
    acme.force_login(tenants["acme"])
    assert 'data-stat="ha"' not in acme.get("/").content.decode()
