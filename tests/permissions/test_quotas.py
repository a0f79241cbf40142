"""Tenant quotas on real PostgreSQL and pvesim: reserve / commit / release / usage, the refusal
naming the quota, the operators' PUT, and THE concurrency test (50 parallel creates through the API
against one tenant's quota: exactly the allowed number accepted, usage afterwards = pvesim)."""

from __future__ import annotations

import threading
import uuid

import pytest
from django.db import connection, transaction

from apps.guests.models import Guest, Snapshot
from apps.operations.models import Operation
from apps.operations.services import operation_fail
from apps.permissions import quotas
from apps.permissions.models import Membership, Quota, Reservation, Tenant, TenantPool
from apps.storage.models import Storage
from apps.storage.services import storage_content_refresh

from tests.conftest import Api
from tests.fixtures import sync, wait_for

pytestmark = pytest.mark.django_db(transaction=True)

GIB, MIB = 1024**3, 1024**2
ISO = "nfs-store:iso/debian-13.1.0-amd64-netinst.iso"
VM_URL = "/api/v1/guests/create-vm/"


@pytest.fixture
def acme(sim_cluster, django_user_model):
    """Tenant acme on pvesim's demo pool "acme" (its guests tagged by a real sync) and a member."""
    tenant = Tenant.objects.create(name="ACME", slug="acme")
    TenantPool.objects.create(tenant=tenant, cluster=sim_cluster, pool="acme")
    sync(sim_cluster)
    member = django_user_model.objects.create_user(username="acme-member", password="tenant-pass-1234")
    Membership.objects.create(user=member, tenant=tenant, role="member")
    tenant.member = member
    tenant.cluster = sim_cluster
    assert Guest.objects.filter(tenant=tenant).exists()
    return tenant


def usage(tenant) -> dict:
    return {row["resource"]: row for row in quotas.quota_usage(tenant=tenant)}


def reserve(tenant, amounts, **kw):
    operation_id = uuid.uuid4()
    with transaction.atomic():
        quotas.quota_reserve(tenant=tenant, operation_id=operation_id, amounts=amounts, **kw)
    return operation_id


def test_usage_counts_what_exists(acme):
    guests = Guest.objects.filter(tenant=acme)
    runnable = guests.filter(template=False)
    u = usage(acme)
    assert u["guests"]["used"] == guests.count()
    assert u["vcpus"]["used"] == sum(g.maxcpu for g in runnable)
    assert u["memory"]["used"] == sum(g.maxmem for g in runnable)
    assert u["disk"]["used"] == sum(g.maxdisk for g in guests)
    assert all(row["limit"] is None and row["reserved"] == 0 for row in u.values())


def test_reserve_refuses_naming_the_quota_and_by_how_much(acme):
    used = usage(acme)["memory"]["used"]
    Quota.objects.create(tenant=acme, resource="memory", limit=used + 12 * GIB)
    first = reserve(acme, {"memory": 4 * GIB, "vcpus": 2})
    assert usage(acme)["memory"]["reserved"] == 4 * GIB
    with pytest.raises(quotas.QuotaExceeded) as refused:
        reserve(acme, {"memory": 16 * GIB}, fields={"memory": "memory"})
    text = refused.value.message_dict["memory"][0]
    assert text.startswith("quota 'Memory' of tenant acme exceeded by 8.0 GiB: limit ")
    assert "reserved 4.0 GiB, requested 16.0 GiB" in text
    assert not Reservation.objects.exclude(operation_id=first).exists()  # a refusal holds nothing
    reserve(acme, {"memory": 8 * GIB})  # exactly up to the limit is fine
    with pytest.raises(quotas.QuotaExceeded):
        reserve(acme, {"memory": 1})


def test_release_frees_and_commit_stops_counting(acme):
    Quota.objects.create(tenant=acme, resource="guests", limit=usage(acme)["guests"]["used"] + 1)
    held = reserve(acme, {"guests": 1})
    with pytest.raises(quotas.QuotaExceeded):
        reserve(acme, {"guests": 1})
    assert quotas.quota_release(operation_id=held) == 1
    assert usage(acme)["guests"]["reserved"] == 0
    again = reserve(acme, {"guests": 1})
    assert quotas.quota_commit(operation_id=again) == 1
    assert quotas.quota_release(operation_id=again) == 0  # settled once
    assert Reservation.objects.get(operation_id=again).state == "committed"
    assert usage(acme)["guests"]["reserved"] == 0


def test_no_quota_row_is_unlimited_and_operators_reserve_nothing(acme):
    reserve(acme, {"vcpus": 10_000, "memory": 2**50})
    assert usage(acme)["vcpus"]["reserved"] == 10_000
    quotas.quota_reserve(tenant=None, operation_id=uuid.uuid4(), amounts={"vcpus": 4})
    assert Reservation.objects.count() == 2


def test_reserve_outside_a_transaction_is_a_bug(acme):
    with pytest.raises(RuntimeError):
        quotas.quota_reserve(tenant=acme, operation_id=uuid.uuid4(), amounts={"vcpus": 1})


def test_snapshots_are_limited_per_guest(acme):
    one, two = Guest.objects.filter(tenant=acme).order_by("vmid")[:2]
    Snapshot.objects.filter(guest__in=[one, two]).delete()
    Quota.objects.create(tenant=acme, resource="snapshots_per_guest", limit=2)
    Snapshot.objects.create(guest=one, name="s1")
    from apps.guests.quotas import subject
    reserve(acme, {"snapshots_per_guest": 1}, subject=subject(one))
    with pytest.raises(quotas.QuotaExceeded) as refused:
        reserve(acme, {"snapshots_per_guest": 1}, subject=subject(one))
    assert "quota 'Snapshots per guest' of tenant acme exceeded by 1" in str(refused.value)
    reserve(acme, {"snapshots_per_guest": 1}, subject=subject(two))  # another guest has its own room
    row = usage(acme)["snapshots_per_guest"]
    assert row["used"] >= 1 and row["reserved"] == 1


def test_operations_ending_settle_their_reservations(acme):
    operation = Operation.objects.create(kind="guest.create", title="q", tenant=acme, status="running")
    with transaction.atomic():
        quotas.quota_reserve(tenant=acme, operation_id=operation.pk, amounts={"vcpus": 2})
    operation_fail(operation=operation, error="boom")
    assert Reservation.objects.get(operation_id=operation.pk).state == "released"


def test_sync_reconciles_reservations_of_operations_that_ended_without_the_hook(acme):
    done = Operation.objects.create(kind="guest.create", title="a", tenant=acme, status="succeeded")
    failed = Operation.objects.create(kind="guest.create", title="b", tenant=acme, status="failed")
    running = Operation.objects.create(kind="guest.create", title="c", tenant=acme, status="running")
    gone, fresh = uuid.uuid4(), uuid.uuid4()  # a request that died / one whose operation is being made
    for op_id in (done.pk, failed.pk, running.pk, gone, fresh):
        with transaction.atomic():
            quotas.quota_reserve(tenant=acme, operation_id=op_id, amounts={"vcpus": 1})
    from datetime import timedelta

    from django.utils import timezone
    Reservation.objects.filter(operation_id=gone).update(created=timezone.now() - timedelta(hours=1))
    sync(acme.cluster)
    state = dict(Reservation.objects.values_list("operation_id", "state"))
    assert state == {done.pk: "committed", failed.pk: "released", running.pk: "reserved", gone: "released",
                     fresh: "reserved"}


def test_operators_set_quotas_through_the_api(acme, api):
    url = f"/api/v1/tenants/{acme.pk}/quota/"
    rows = api.put(url, {"memory": 32 * GIB, "vcpus": 16, "gpus": {"a100-1g": 2}})
    by = {r["resource"]: r for r in rows}
    assert by["memory"]["limit"] == 32 * GIB and by["vcpus"]["limit"] == 16 and by["gpu:a100-1g"]["limit"] == 2
    api.patch(url, {"vcpus": None})
    assert not Quota.objects.filter(tenant=acme, resource="vcpus").exists()
    assert Quota.objects.get(tenant=acme, resource="memory").limit == 32 * GIB  # left out: unchanged
    assert "vcpus" in api.put(url, {"vcpus": -1}, expect=400)["errors"]
    Api(acme.member).put(url, {"vcpus": 1000}, expect=403)  # a tenant cannot raise its own quota


@pytest.fixture
def no_worker(monkeypatch):
    """Accepted operations are saved but not queued: these tests look at the reservation only."""
    monkeypatch.setattr("apps.operations.services._enqueue", lambda operation: None)


def test_every_growing_action_goes_through_the_quota(acme, no_worker, pve):
    """Clone, restore as new, snapshot, backup and config growth of a tenant's guest: refused with a 400
    naming the quota when full (Proxmox untouched), reserved when there is room."""
    from apps.storage.models import StorageContent

    member = Api(acme.member)
    vm = Guest.objects.filter(tenant=acme, type="qemu", template=False).order_by("vmid").first()
    used = usage(acme)
    for resource in ("guests", "backups", "memory", "vcpus", "disk"):
        Quota.objects.create(tenant=acme, resource=resource, limit=used[resource]["used"])
    Quota.objects.create(tenant=acme, resource="snapshots_per_guest", limit=vm.snapshots.count())
    before = pve.get(f"nodes/{vm.node.name}/qemu/{vm.vmid}/config")

    refused = member.post(f"/api/v1/guests/{vm.pk}/clone/", {"name": "copy-01"}, expect=400)["errors"]
    assert "quota 'Guests' of tenant acme exceeded by 1" in refused["guests"][0]
    refused = member.post(f"/api/v1/guests/{vm.pk}/snapshots/", {"name": "one-more"}, expect=400)["errors"]
    assert "quota 'Snapshots per guest' of tenant acme exceeded by 1" in refused["name"][0]
    refused = member.post(f"/api/v1/guests/{vm.pk}/backup/", {"storage": "nfs-store"}, expect=400)["errors"]
    assert "quota 'Backups' of tenant acme exceeded by 1" in refused["backups"][0]
    refused = member.patch(f"/api/v1/guests/{vm.pk}/config/", {"memory": vm.maxmem // MIB + 1024}, expect=400)
    assert "quota 'Memory' of tenant acme exceeded by 1.0 GiB" in refused["errors"]["memory"][0]
    refused = member.patch(f"/api/v1/guests/{vm.pk}/config/", {"cores": vm.maxcpu + 2}, expect=400)
    assert "quota 'vCPUs' of tenant acme exceeded by 2" in refused["errors"]["cores"][0]
    assert pve.get(f"nodes/{vm.node.name}/qemu/{vm.vmid}/config")["digest"] == before["digest"]  # never sent
    backup = StorageContent.objects.create(storage=Storage.objects.get(cluster=acme.cluster, storage="nfs-store"),
                                           content="backup", vmid=vm.vmid,
                                           volid=f"nfs-store:backup/vzdump-qemu-{vm.vmid}-2026_01_01-00_00_00.vma.zst")
    refused = member.post(f"/api/v1/guests/{vm.pk}/restore/", {"backup": backup.volid, "target": "new"}, expect=400)
    assert "quota" in str(refused["errors"]) and not Reservation.objects.exists()

    Quota.objects.filter(tenant=acme).delete()  # room again: each holds its reservation
    member.post(f"/api/v1/guests/{vm.pk}/snapshots/", {"name": "one-more"}, expect=202)
    member.post(f"/api/v1/guests/{vm.pk}/clone/", {"name": "copy-01"}, expect=202)
    held = set(Reservation.objects.filter(state="reserved").values_list("resource", flat=True))
    assert held == {f"snapshots_per_guest@{vm.cluster_id}:{vm.vmid}", "guests", "vcpus", "memory", "disk"}


def vm_body(i: int) -> dict:
    return {"source": "iso", "iso": ISO, "name": f"quota-{i:02d}", "cores": 1, "memory": 512,
            "storage": "ceph-rbd", "disk_size": 1, "bridge": "vmbr0", "node": "pve3"}


def test_fifty_parallel_creates_get_exactly_the_quota(acme, celery_worker, pve):
    """50 tenant creates at once through the API against a memory quota with room for 7: 7 are
    accepted, 43 refused (400 naming the memory quota); afterwards usage = pvesim, nothing reserved."""
    for storage in Storage.objects.filter(cluster=acme.cluster):
        storage_content_refresh(storage=storage)
    allowed, total = 7, 50
    Quota.objects.create(tenant=acme, resource="memory", limit=usage(acme)["memory"]["used"] + allowed * 512 * MIB)
    Quota.objects.create(tenant=acme, resource="vcpus", limit=10_000)
    start, results, lock = threading.Barrier(total), [], threading.Lock()

    def create(i: int) -> None:
        try:
            client = Api(acme.member)
            start.wait(timeout=30)
            response = client.client.post(VM_URL, vm_body(i), format="json")
            with lock:
                results.append((response.status_code, response.json()))
        finally:
            connection.close()  # each thread had its own connection

    threads = [threading.Thread(target=create, args=(i,)) for i in range(total)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=80)
    assert len(results) == total
    accepted = [body for status, body in results if status == 202]
    refused = [body for status, body in results if status != 202]
    assert len(accepted) == allowed, [b for _, b in results][:3]
    assert {tuple(sorted(b["errors"])) for b in refused} == {("memory",)}, refused[:3]
    # By 512 MiB, or more in the instant a finished create's guest row and its reservation both count.
    assert all(b["errors"]["memory"][0].startswith("quota 'Memory' of tenant acme exceeded by ") for b in refused)
    assert any("exceeded by 512.0 MiB" in b["errors"]["memory"][0] for b in refused)

    def all_done():
        return not Operation.objects.filter(pk__in=[b["id"] for b in accepted],
                                            status__in=["pending", "running"]).exists()
    wait_for(all_done, timeout=60)
    assert set(Operation.objects.filter(pk__in=[b["id"] for b in accepted]).values_list("status", flat=True)) \
        == {"succeeded"}
    in_pool = [g for g in pve.get("cluster/resources", type="vm") if g.get("pool") == "acme"]
    runnable = [g for g in in_pool if not g.get("template")]
    u = usage(acme)
    assert u["memory"]["reserved"] == u["vcpus"]["reserved"] == u["guests"]["reserved"] == 0
    assert u["guests"]["used"] == len(in_pool)
    assert u["memory"]["used"] == sum(int(g["maxmem"]) for g in runnable) == Quota.objects.get(
        tenant=acme, resource="memory").limit
    assert u["vcpus"]["used"] == sum(int(g["maxcpu"]) for g in runnable)
    assert len([g for g in in_pool if str(g.get("name", "")).startswith("quota-")]) == allowed


def test_wizard_shows_the_bars_and_names_the_quota_on_its_field(acme, client):
    from django.test import Client

    for storage in Storage.objects.filter(cluster=acme.cluster):
        storage_content_refresh(storage=storage)
    used = usage(acme)["memory"]["used"]
    Quota.objects.create(tenant=acme, resource="memory", limit=used + 4 * GIB)
    member = Client()
    member.force_login(acme.member)
    page = member.get("/guests/create/vm/").content.decode()
    assert 'id="quota-bars"' in page and "/guests/create/quota/" in page
    assert "password" not in page.split('id="quota-bars"')[1].split(">")[0]  # the bars never GET secrets

    bars = member.get("/guests/create/quota/", {"cores": 2, "memory": 2048, "disk_size": 10}).content.decode()
    assert "Quota of ACME" in bars and "this request 2.0 GiB" in bars and "leaves 2.0 GiB" in bars
    bars = member.get("/guests/create/quota/", {"cores": 2, "memory": 6144, "disk_size": 10}).content.decode()
    assert "quota-row over" in bars and "over the quota by 2.0 GiB" in bars
    assert client.get("/guests/create/quota/", {"memory": 6144}).content == b""  # operators: no quota

    data = {"_step": "hardware", "_nav": "next", "source": "iso", "iso": ISO, "clone": "linked", "name": "wiz-q",
            "cores": "2", "memory": "6144", "storage": "ceph-rbd", "disk_size": "16", "bridge": "vmbr0",
            "ostype": "l26", "ip_mode": "dhcp", "node": ""}
    answer = member.post("/guests/create/vm/", data, HTTP_HX_REQUEST="true").content.decode()
    assert 'name="_step" value="hardware"' in answer and "quota &#x27;Memory&#x27; of tenant acme exceeded by 2.0 GiB" in answer
    assert not Operation.objects.exists()


def test_disk_growth_of_a_config_change_goes_through_the_quota(acme, no_worker, pve):
    """A disk grown or added by a config change: refused on its field when the disk quota is full
    (nothing sent to Proxmox, nothing held), reserved for the operation when there is room."""
    from apps.guests.actions.config.validation import resizable_disks
    from apps.guests.services import guest_refresh

    member = Api(acme.member)
    vm = Guest.objects.filter(tenant=acme, type="qemu", template=False).order_by("vmid").first()
    guest_refresh(guest=vm)  # its config (disks) as the edit form reads it
    vm.refresh_from_db()
    disk = resizable_disks(vm)[0]
    new_gib = -(-disk["bytes"] // GIB) + 2
    grow = new_gib * GIB - disk["bytes"]
    Quota.objects.create(tenant=acme, resource="disk", limit=usage(acme)["disk"]["used"])
    before = pve.get(f"nodes/{vm.node.name}/qemu/{vm.vmid}/config")["digest"]

    url = f"/api/v1/guests/{vm.pk}/config/"
    refused = member.patch(url, {"resize": {disk["key"]: new_gib}}, expect=400)["errors"]
    assert f"quota 'Disk' of tenant acme exceeded by {quotas.amount_text('disk', grow)}" in \
        refused[f"resize.{disk['key']}"][0]
    refused = member.patch(url, {"add_disks": [{"storage": "ceph-rbd", "size": 3}]}, expect=400)["errors"]
    assert "quota 'Disk' of tenant acme exceeded by 3.0 GiB" in refused["add_disks"][0]
    assert pve.get(f"nodes/{vm.node.name}/qemu/{vm.vmid}/config")["digest"] == before  # never sent
    assert not Reservation.objects.exists()

    Quota.objects.filter(tenant=acme, resource="disk").update(limit=usage(acme)["disk"]["used"] + grow)
    operation = member.patch(url, {"resize": {disk["key"]: new_gib}}, expect=202)
    held = Reservation.objects.get(state="reserved")
    assert (str(held.operation_id), held.resource, held.amount) == (operation["id"], "disk", grow)
