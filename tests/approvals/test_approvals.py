"""Approval of creates above a tenant's size, end to end on pvesim with a real worker: the request
holds its vmid and quota from the start (also across a sync long after), the operator declines with
a reason or approves, and approval runs the create on the reservation taken at request time."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.test import Client
from django.utils import timezone

from apps.approvals.models import ApprovalRequest
from apps.core.models import AuditEntry
from apps.guests.models import Guest, VmidReservation
from apps.leases.models import Lease
from apps.operations.models import Operation
from apps.permissions import quotas
from apps.permissions.models import Membership, Quota, Reservation, Tenant, TenantPool
from apps.storage.models import Storage
from apps.storage.services import storage_content_refresh
from tests.conftest import Api
from tests.fixtures import sync, wait_for

pytestmark = pytest.mark.django_db(transaction=True)

GIB, MIB = 1024**3, 1024**2
VM_URL = "/api/v1/guests/create-vm/"


def vm_body(name: str, memory: int) -> dict:
    return {"source": "iso", "iso": "nfs-store:iso/debian-13.1.0-amd64-netinst.iso", "name": name, "cores": 1,
            "memory": memory, "storage": "ceph-rbd", "disk_size": 1, "bridge": "vmbr0", "node": "pve3"}


@pytest.fixture
def tenants(sim_cluster, django_user_model):
    """acme asks approval above 1 GiB of memory (30-day leases); globex on its pool; a member each."""
    acme = Tenant.objects.create(name="ACME", slug="acme", approval_above_memory=GIB, lease_days=30)
    globex = Tenant.objects.create(name="Globex", slug="globex")
    TenantPool.objects.create(tenant=acme, cluster=sim_cluster, pool="acme")
    TenantPool.objects.create(tenant=globex, cluster=sim_cluster, pool="globex")
    sync(sim_cluster)
    for storage in Storage.objects.filter(cluster=sim_cluster):
        storage_content_refresh(storage=storage)
    for tenant in (acme, globex):
        tenant.member = django_user_model.objects.create_user(username=f"{tenant.slug}-member", password="pass-12345")
        Membership.objects.create(user=tenant.member, tenant=tenant, role="member")
    return acme, globex


def memory(tenant) -> dict:
    return next(row for row in quotas.quota_usage(tenant=tenant) if row["resource"] == "memory")


def test_a_request_above_the_size_waits_holding_its_quota_until_approved(tenants, operator, sim_cluster,
                                                                         celery_worker, pve):
    acme, globex = tenants
    used = memory(acme)["used"]
    Quota.objects.create(tenant=acme, resource="memory", limit=used + 3 * GIB)
    member, api = Api(acme.member), Api(operator)

    waiting = member.post(VM_URL, vm_body("big-01", 2048), expect=202)["approval_request"]
    assert waiting["status"] == "waiting" and waiting["above"] == ["Memory 2.0 GiB is above 1.0 GiB"]
    approval = ApprovalRequest.objects.get(pk=waiting["id"])
    vmid = approval.payload["vmid"]
    assert not Operation.objects.filter(kind="guest.create").exists()  # nothing reaches Proxmox yet
    assert VmidReservation.objects.filter(operation_id=approval.pk, vmid=vmid).exists()
    assert memory(acme)["reserved"] == 2 * GIB
    # The held quota refuses what no longer fits, at request time, naming the quota.
    refused = member.post(VM_URL, vm_body("big-02", 2048), expect=400)["errors"]["memory"][0]
    assert refused.startswith("quota 'Memory' of tenant acme exceeded by 1.0 GiB")
    # An hour on, the sync's reconciler leaves a waiting request's reservation alone.
    Reservation.objects.filter(operation_id=approval.pk).update(created=timezone.now() - timedelta(hours=1))
    sync(sim_cluster)
    assert memory(acme)["reserved"] == 2 * GIB

    url = f"/api/v1/approvals/{approval.pk}/"
    Api(globex.member).get(url, expect=404)
    Api(globex.member).post(url + "approve/", {}, expect=404)
    member.post(url + "approve/", {}, expect=403)  # a tenant does not approve its own
    assert [row["id"] for row in member.get("/api/v1/approvals/")["results"]] == [str(approval.pk)]
    assert Api(globex.member).get("/api/v1/approvals/")["results"] == []
    assert [r["id"] for r in api.get("/api/v1/approvals/", {"status": "waiting"})["results"]] == [str(approval.pk)]

    # The operator lowers the quota meanwhile: approval still runs on what was held.
    Quota.objects.filter(tenant=acme, resource="memory").update(limit=used)
    operation = api.post(url + "approve/", {"reason": "fine for the exam week"}, expect=202)
    api.post(url + "approve/", {}, expect=400)  # decided once
    op = Operation.objects.get(pk=operation["id"])
    assert (op.kind, op.created_by, op.tenant_id) == ("guest.create", acme.member, acme.pk)
    assert Reservation.objects.get(operation_id=op.pk, resource="memory").amount == 2 * GIB
    assert wait_for(lambda: Operation.objects.get(pk=op.pk).status in ("succeeded", "failed"), timeout=60)
    op.refresh_from_db()
    assert op.status == "succeeded", op.error
    made = next(g for g in pve.get("cluster/resources", type="vm") if int(g["vmid"]) == vmid)
    assert made["pool"] == "acme" and int(made["maxmem"]) == 2 * GIB
    approval.refresh_from_db()
    assert (approval.status, approval.operation_id, approval.decided_by) == ("approved", op.pk, operator)
    assert memory(acme)["reserved"] == 0 and memory(acme)["used"] == used + 2 * GIB
    guest = Guest.objects.get(cluster=sim_cluster, vmid=vmid)
    assert guest.tenant_id == acme.pk and Lease.objects.filter(guest=guest).exists()  # the tenant's 30-day lease
    assert set(AuditEntry.objects.filter(action__startswith="approval.").values_list("action", "result")) == {
        ("approval.request", "accepted"), ("approval.decide", "denied"), ("approval.approve", "success")}


def test_declined_or_withdrawn_frees_what_was_held_and_the_wizard_says_it_waits(tenants, operator, pve):
    acme, _ = tenants
    member = Api(acme.member)
    first = member.post(VM_URL, vm_body("big-03", 4096), expect=202)["approval_request"]
    second = member.post(VM_URL, vm_body("big-04", 2048), expect=202)["approval_request"]
    assert memory(acme)["reserved"] == 6 * GIB

    page = Client()
    page.force_login(operator)
    listing = page.get("/approvals/?status=waiting").content.decode()
    assert "big-03" in listing and "big-04" in listing and "Decline" in listing
    refused = Api(operator).post(f"/api/v1/approvals/{first['id']}/decline/", {"reason": " "}, expect=400)
    assert "reason" in refused["errors"]
    response = page.post(f"/approvals/{first['id']}/decline/", {"reason": "too big for a lab VM"})
    assert response.status_code == 302
    declined = ApprovalRequest.objects.get(pk=first["id"])
    assert (declined.status, declined.reason) == ("declined", "too big for a lab VM")
    assert not VmidReservation.objects.filter(operation_id=declined.pk).exists()
    assert memory(acme)["reserved"] == 2 * GIB
    shown = Client()
    shown.force_login(acme.member)
    assert "too big for a lab VM" in shown.get(f"/approvals/{first['id']}/").content.decode()

    withdrawn = member.post(f"/api/v1/approvals/{second['id']}/withdraw/", {}, expect=200)
    assert withdrawn["status"] == "withdrawn" and memory(acme)["reserved"] == 0
    assert not VmidReservation.objects.exists() and not Operation.objects.filter(kind="guest.create").exists()
    assert not [g for g in pve.get("cluster/resources", type="vm") if str(g.get("name", "")).startswith("big-")]

    # Through the create wizard: the page says the request waits, and where to follow it.
    wizard = Client()
    wizard.force_login(acme.member)
    data = {"_step": "review", "_nav": "create", **vm_body("wiz-big", 2048), "clone": "linked", "firewall": "on",
            "ostype": "l26", "ip_mode": "dhcp"}
    answer = wizard.post("/guests/create/vm/", data, HTTP_HX_REQUEST="true").content.decode()
    approval = ApprovalRequest.objects.get(status="waiting")
    assert 'id="approval-submitted"' in answer and f"/approvals/{approval.pk}/" in answer
    assert "Memory 2.0 GiB is above 1.0 GiB" in answer
    assert approval.created_by == acme.member and approval.payload["plan"]["pool"] == "acme"
    assert not Operation.objects.filter(kind="guest.create").exists()
    listing = wizard.get("/approvals/").content.decode()
    assert "wiz-big" in listing and ">Withdraw</button>" in listing and ">Approve</button>" not in listing



def test_a_clone_above_the_size_waits_too_and_runs_once_approved(tenants, operator, celery_worker, pve):
    """A clone's size is its source's: above acme's 1 GiB it waits (API and page), holding the new vmid
    and the quota; approved, the clone runs as the member's into acme's pool."""
    acme, _ = tenants
    source = Guest.objects.filter(tenant=acme, type="qemu", template=False, maxmem__gt=GIB).order_by("vmid").first()
    assert source is not None, "the demo has a VM of more than 1 GiB in pool acme"
    page = Client()
    page.force_login(acme.member)
    answer = page.post(f"/guests/{source.pk}/clone/run/", {"name": "copy-big", "mode": "full",
                                                                 "target": source.node.name, "pool": "acme"},
                       HTTP_HX_REQUEST="true").content.decode()
    approval = ApprovalRequest.objects.filter(kind="guest.clone").first()
    assert approval is not None, answer
    assert 'id="approval-waiting"' in answer and f"/approvals/{approval.pk}/" in answer
    newid = approval.payload["kwargs"]["newid"]
    assert VmidReservation.objects.filter(operation_id=approval.pk, vmid=newid).exists()
    assert memory(acme)["reserved"] == source.maxmem and not Operation.objects.filter(kind="guest.clone").exists()
    body = Api(acme.member).post(f"/api/v1/guests/{source.pk}/clone/", {"name": "copy-big-2"}, expect=202)
    assert body["approval_request"]["status"] == "waiting"

    operation = Api(operator).post(f"/api/v1/approvals/{approval.pk}/approve/", {}, expect=202)
    op = Operation.objects.get(pk=operation["id"])
    assert (op.kind, op.created_by) == ("guest.clone", acme.member)
    assert wait_for(lambda: Operation.objects.get(pk=op.pk).status in ("succeeded", "failed"), timeout=60)
    op.refresh_from_db()
    assert op.status == "succeeded", op.error
    made = next(g for g in pve.get("cluster/resources", type="vm") if int(g["vmid"]) == newid)
    assert made["pool"] == "acme" and made["name"] == "copy-big"
