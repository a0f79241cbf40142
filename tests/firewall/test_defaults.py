"""New guests get their tenant's default security groups: chosen per cluster by the tenant (its own
or shared groups, never another tenant's), queued by the create's transaction, added once the
create succeeded (at the end of the guest's rules, never twice), nothing for a failed create."""

from __future__ import annotations

import pytest

from apps.proxmox import GuestRef
from apps.proxmox import firewall as fw

pytestmark = pytest.mark.django_db


def test_tenant_defaults_reach_a_new_guest(tenants, acme_api, globex_api, pve, django_capture_on_commit_callbacks):
    from apps.firewall.defaults import CreateExtension, apply_after_create
    from apps.operations.models import Operation

    acme, globex, cluster = tenants["acme"], tenants["globex"], tenants["cluster"]
    groups_url = f"/api/v1/clusters/{cluster.pk}/firewall/groups/"
    own = acme_api.post(groups_url, {"name": "base"}, expect=201)["group"]
    theirs = globex_api.post(groups_url, {"name": "base"}, expect=201)["group"]
    url = f"/api/v1/clusters/{cluster.pk}/firewall/defaults/"
    body = acme_api.put(url, {"groups": [own, theirs, "nosuch"]}, expect=400)
    assert len(body["errors"]["groups"]) == 2 and theirs in body["errors"]["groups"][0]
    assert acme_api.put(url, {"groups": [own, "webserver"]})["groups"] == [own, "webserver"]
    assert acme_api.get(url)["groups"] == [own, "webserver"]
    assert globex_api.get(url)["groups"] == []

    # guest 101 stands for the new guest: it already has one rule of its own
    level = fw.Level.of_guest(GuestRef("pve2", "qemu", 101))
    fw.create_rule(pve, level, {"type": "in", "action": "ACCEPT", "macro": "SSH", "enable": 1})
    operation = Operation.objects.create(kind="guest.create", tenant=acme, cluster_id=cluster.pk, status="running",
                                         created_by=tenants["users"]["acme"])
    plan = {"cluster_id": cluster.pk, "type": "qemu"}
    with django_capture_on_commit_callbacks(execute=False) as queued:
        CreateExtension().reserve(operation=operation, plan=plan, vmid=101, node="pve2")
    assert len(queued) == 1
    other = Operation.objects.create(kind="guest.create", tenant=globex, cluster_id=cluster.pk, status="running")
    with django_capture_on_commit_callbacks(execute=False) as queued:
        CreateExtension().reserve(operation=other, plan=plan, vmid=104, node="pve3")
    assert queued == []  # globex chose no defaults

    args = {"operation_id": str(operation.pk), "cluster_id": cluster.pk, "vmid": 101, "kind": "qemu", "node": "pve2"}
    assert apply_after_create(**args) == "waiting"
    Operation.objects.filter(pk=operation.pk).update(status="failed")
    assert apply_after_create(**args) == "create failed"
    assert len(fw.rules(pve, level)[0]) == 1
    Operation.objects.filter(pk=operation.pk).update(status="succeeded")
    assert apply_after_create(**args) == f"added: {own}, webserver"
    rules = fw.rules(pve, level)[0]
    assert [(r["type"], r["action"]) for r in rules] == [("in", "ACCEPT"), ("group", own), ("group", "webserver")]
    assert apply_after_create(**args) == "nothing"
    assert len(fw.rules(pve, level)[0]) == 3

    from apps.core.models import AuditEntry
    entry = AuditEntry.objects.filter(action="firewall.default_groups_apply").latest("pk")
    assert entry.result == "success" and entry.tenant_id == acme.pk
