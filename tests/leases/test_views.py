"""The lease pages: the list, extending from the guest page (owners), setting (operators only, a
tenant's attempt refused and audited), and another tenant's lease unreachable (404). One test: the
pvesim scenario behind it is the slow part."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.test import Client
from django.utils import timezone

from apps.core.models import AuditEntry
from apps.guests.models import Guest
from apps.leases.models import Lease
from apps.permissions.models import Membership, Tenant, TenantPool
from tests.fixtures import sync

pytestmark = pytest.mark.django_db


@pytest.fixture
def acme(sim_cluster, django_user_model):
    acme = Tenant.objects.create(name="ACME", slug="acme", lease_days=30, lease_max_extension_days=10)
    TenantPool.objects.create(tenant=acme, cluster=sim_cluster, pool="acme")
    globex = Tenant.objects.create(name="Globex", slug="globex")
    TenantPool.objects.create(tenant=globex, cluster=sim_cluster, pool="globex")
    sync(sim_cluster)
    acme.member = django_user_model.objects.create_user(username="acme-member", password="pass-12345")
    Membership.objects.create(user=acme.member, tenant=acme, role="member")
    acme.outsider = django_user_model.objects.create_user(username="globex-member", password="pass-12345")
    Membership.objects.create(user=acme.outsider, tenant=globex, role="member")
    return acme


def logged_in(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def test_owners_extend_and_operators_set_leases_from_the_pages(acme, operator):
    guest = Guest.objects.filter(tenant=acme).order_by("vmid").first()
    lease = Lease.objects.create(guest=guest, expires_at=timezone.now() + timedelta(days=2))
    member = logged_in(acme.member)
    listing = member.get("/leases/").content.decode()
    assert f'data-lease="{lease.pk}"' in listing and "ends soon" in listing
    page = member.get(f"/guests/{guest.pk}/").content.decode()
    assert 'id="lease-warning"' in page and "Extend lease" in page and "Expires (operators)" not in page
    assert 'id="lease-warnings"' in member.get("/").content.decode()

    response = member.post(f"/leases/{lease.pk}/extend/", {"days": "5"}, follow=True)
    lease.refresh_from_db()
    assert abs(lease.expires_at - (timezone.now() + timedelta(days=7))) < timedelta(minutes=1)
    assert "now ends on" in response.content.decode()
    response = member.post(f"/leases/{lease.pk}/extend/", {"days": "50"}, follow=True)
    assert "days: extend by 1 to 10 days at a time" in response.content.decode()

    assert logged_in(acme.outsider).post(f"/leases/{lease.pk}/extend/", {"days": "1"}).status_code == 404
    assert f'data-lease="{lease.pk}"' not in logged_in(acme.outsider).get("/leases/").content.decode()
    assert member.post(f"/guests/{guest.pk}/lease/", {"expires_at": ""}).status_code == 403
    assert AuditEntry.objects.filter(action="lease.set", result="denied", username="acme-member").exists()

    # Operators set and remove a lease from the guest page.
    client = logged_in(operator)
    assert "Expires (operators)" in client.get(f"/guests/{guest.pk}/").content.decode()
    client.post(f"/guests/{guest.pk}/lease/", {"expires_at": "2031-01-31T18:00"})
    assert Lease.objects.get(guest=guest).expires_at.strftime("%Y-%m-%d %H:%M") == "2031-01-31 18:00"
    response = client.post(f"/guests/{guest.pk}/lease/", {"expires_at": "soon"}, follow=True)
    assert "expires_at: a date and time" in response.content.decode()
    client.post(f"/guests/{guest.pk}/lease/", {"expires_at": ""})
    assert not Lease.objects.filter(guest=guest).exists()
    assert AuditEntry.objects.filter(action="guest.lease_set", result="success").count() == 2
    assert AuditEntry.objects.filter(action="guest.lease_extend", result="success").count() == 1
