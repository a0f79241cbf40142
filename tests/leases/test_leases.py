"""Leases end to end on pvesim with time moved forward: the sweep runs at chosen moments (its `now`),
the stop and the delete run as real operations on a real worker against pvesim."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.test import Client
from django.utils import timezone

from apps.core.models import AuditEntry
from apps.guests.models import Guest
from apps.leases import services
from apps.leases.models import Lease
from apps.operations.models import Operation
from apps.permissions.models import Membership, Tenant, TenantPool
from tests.conftest import Api
from tests.fixtures import sync, wait_for

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def tenants(sim_cluster, django_user_model):
    """acme (30-day leases, extensions of up to 10 days, 7 days' grace) and globex on the demo pools."""
    acme = Tenant.objects.create(name="ACME", slug="acme", lease_days=30, lease_max_extension_days=10,
                                 lease_grace_days=7)
    globex = Tenant.objects.create(name="Globex", slug="globex")
    TenantPool.objects.create(tenant=acme, cluster=sim_cluster, pool="acme")
    TenantPool.objects.create(tenant=globex, cluster=sim_cluster, pool="globex")
    sync(sim_cluster)
    for tenant in (acme, globex):
        tenant.member = django_user_model.objects.create_user(username=f"{tenant.slug}-member", password="pass-12345")
        Membership.objects.create(user=tenant.member, tenant=tenant, role="member")
    return acme, globex


def _page(user, url) -> str:
    client = Client()
    client.force_login(user)
    response = client.get(url)
    assert response.status_code == 200, url
    return response.content.decode()


def _finished(operation_id):
    return wait_for(lambda: (op := Operation.objects.get(pk=operation_id)).status not in ("pending", "running")
                    and op, timeout=60)


def test_owners_extend_within_the_limit_and_only_their_own(tenants, api):
    acme, globex = tenants
    guest = Guest.objects.filter(tenant=acme).order_by("vmid").first()
    now = timezone.now()
    lease = Lease.objects.create(guest=guest, expires_at=now + timedelta(days=30))
    member = Api(acme.member)
    url = f"/api/v1/leases/{lease.pk}/extend/"

    assert [row["guest"] for row in member.get("/api/v1/leases/")["results"]] == [guest.pk]
    assert Api(globex.member).get("/api/v1/leases/")["results"] == []
    Api(globex.member).post(url, {"days": 1}, expect=404)
    refused = member.post(url, {"days": 11}, expect=400)["errors"]["days"][0]
    assert refused == "extend by 1 to 10 days at a time"
    refused = member.post(url, {"days": 5}, expect=400)["errors"]["days"][0]  # already a full term ahead
    assert "a lease reaches at most 30 days ahead" in refused and "once fewer days are left" in refused
    # 12 days later: 18 days left, so up to 10 more (but no further than 30 days ahead).
    Lease.objects.filter(pk=lease.pk).update(expires_at=now + timedelta(days=18))
    assert "extend by at most 12 days now" not in member.post(url, {"days": 10}, expect=200)
    assert "extend by at most 2 days now" in member.post(url, {"days": 5}, expect=400)["errors"]["days"][0]
    lease.refresh_from_db()
    assert abs(lease.expires_at - (now + timedelta(days=28))) < timedelta(minutes=1) and lease.extensions == 1
    assert AuditEntry.objects.filter(action="guest.lease_extend", result="success", target_id=str(guest.pk)).count() == 1
    # Only operators set or remove a lease.
    member.post("/api/v1/leases/", {"guest": guest.pk, "expires_at": None}, expect=403)
    member.delete(f"/api/v1/leases/{lease.pk}/", expect=403)
    api.delete(f"/api/v1/leases/{lease.pk}/")
    assert not Lease.objects.filter(guest=guest).exists()


def test_guests_the_portal_makes_get_their_tenants_lease(tenants):
    """When a create, clone or restore-as-new succeeds, its new guest gets the tenant's lease_days
    (a restore in place, a failed operation or a tenant without leases: none)."""
    from apps.operations.signals import operation_finished

    acme, globex = tenants
    one, two, three, four = Guest.objects.filter(tenant=acme).order_by("vmid")[:4]
    other = Guest.objects.filter(tenant=globex).first()

    def finished(kind, status, **kwargs):
        operation = Operation.objects.create(kind=kind, status=status, cluster_id=one.cluster_id, task_kwargs=kwargs)
        operation_finished.send(sender=Operation, operation=operation)

    finished("guest.create", "succeeded", vmid=one.vmid)
    finished("guest.clone", "succeeded", newid=two.vmid)
    finished("guest.restore", "succeeded", vmid=three.vmid, target="same", guest_id=three.pk)
    finished("guest.create", "failed", vmid=four.vmid)
    finished("guest.create", "succeeded", vmid=other.vmid)  # globex has no lease policy
    finished("guest.restore", "succeeded", vmid=four.vmid, target="new", guest_id=one.pk)
    leased = dict(Lease.objects.values_list("guest_id", "expires_at"))
    assert set(leased) == {one.pk, two.pk, four.pk}
    assert all(abs(at - (timezone.now() + timedelta(days=30))) < timedelta(minutes=1) for at in leased.values())


def test_lease_warns_stops_and_deletes_as_time_moves_forward(tenants, api, celery_worker, pve):
    acme, _ = tenants
    guest = Guest.objects.filter(tenant=acme, type="qemu", template=False, status="running", hastate="") \
        .order_by("vmid").first()
    assert guest is not None, "the demo has a running VM in pool acme"
    node, vmid = guest.node.name, guest.vmid
    expires = timezone.now() + timedelta(days=10)
    body = api.post("/api/v1/leases/", {"guest": guest.pk, "expires_at": expires.isoformat()})
    assert body["state"] == "active" and body["max_extension_days"] == 10
    page = f"/guests/{guest.pk}/"
    assert 'id="lease-warning"' not in _page(acme.member, page)

    # Three days before: the owner is warned in the portal (guest page, dashboard), once, in the audit log.
    assert services.lease_sweep(now=expires - timedelta(days=3)) == {"warned": 1, "stopped": 0, "deleted": 0}
    assert services.lease_sweep(now=expires - timedelta(days=2))["warned"] == 0
    assert 'id="lease-warning"' in _page(acme.member, page)
    assert 'id="lease-warnings"' in _page(acme.member, "/")
    assert AuditEntry.objects.filter(action="guest.lease_warning", tenant_id=acme.pk, target_id=str(guest.pk)).exists()

    # Expired: stopped by an operation (audited), once; not deleted during the grace period.
    after = expires + timedelta(minutes=1)
    assert services.lease_sweep(now=after) == {"warned": 0, "stopped": 1, "deleted": 0}
    stop = Operation.objects.get(kind="guest.lease_stop")
    assert (stop.tenant_id, stop.target_id) == (acme.pk, str(guest.pk))
    assert _finished(stop.pk).status == "succeeded", stop.error
    assert pve.get(f"nodes/{node}/qemu/{vmid}/status/current")["status"] == "stopped"
    assert AuditEntry.objects.filter(action="guest.lease_stop", result="accepted",
                                     detail__operation=str(stop.pk)).exists()
    assert services.lease_sweep(now=expires + timedelta(days=6)) == {"warned": 0, "stopped": 0, "deleted": 0}
    assert "deleted on" in _page(acme.member, page)

    # Extended in its grace period (a day after expiry, by 2 days): it lives on to expires + 3 days.
    lease = Lease.objects.get(guest=guest)
    services.lease_extend(lease=lease, user=acme.member, days=2, now=expires + timedelta(days=1))
    # Its new end is warned of in turn, and nothing more happens before it.
    assert services.lease_sweep(now=expires + timedelta(days=2)) == {"warned": 1, "stopped": 0, "deleted": 0}
    # At the first grace end it is not deleted: its new expiry only stops it (already off) again.
    moment = expires + timedelta(days=7, minutes=1)
    assert services.lease_sweep(now=moment) == {"warned": 0, "stopped": 1, "deleted": 0}
    again = Operation.objects.filter(kind="guest.lease_stop").exclude(pk=stop.pk).get()
    assert _finished(again.pk).status == "succeeded"

    # The new grace period over: deleted by an operation (purged), the guest gone on pvesim and here.
    moment = expires + timedelta(days=10, minutes=1)
    assert services.lease_sweep(now=moment) == {"warned": 0, "stopped": 0, "deleted": 1}
    assert services.lease_sweep(now=moment)["deleted"] == 0  # once
    delete = Operation.objects.get(kind="guest.lease_delete")
    assert _finished(delete.pk).status == "succeeded", delete.error
    assert vmid not in {int(g["vmid"]) for g in pve.get("cluster/resources", type="vm")}
    assert not Guest.objects.filter(pk=guest.pk).exists() and not Lease.objects.exists()
    actions = list(AuditEntry.objects.filter(target_id=str(guest.pk), action__startswith="guest.lease_")
                   .order_by("pk").values_list("action", flat=True))
    assert actions == ["guest.lease_set", "guest.lease_warning", "guest.lease_stop", "guest.lease_extend",
                       "guest.lease_warning", "guest.lease_stop", "guest.lease_delete"]
