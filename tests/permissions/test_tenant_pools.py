"""An operator assigns a Proxmox pool to a tenant: the portal creates it on Proxmox (pvesim) when
missing, outside any database transaction; one pool per cluster; another tenant's pool, a bad id
or a non-operator are refused naming the field (403 audited), and nothing is made on Proxmox."""

from __future__ import annotations

import pytest
from django.db import transaction

from apps.core.models import AuditEntry
from apps.permissions.models import Membership, Tenant, TenantPool
from apps.permissions.tenant_pools import tenant_pool_assign
from tests.conftest import Api

pytestmark = pytest.mark.django_db(transaction=True)  # the service refuses to run inside one


def pool_ids(pve) -> set[str]:
    return {p["poolid"] for p in pve.get("pools")}


def test_assigning_a_missing_pool_creates_it_on_proxmox(sim_cluster, pve, api, django_user_model):
    acme = Tenant.objects.create(name="ACME", slug="acme")
    globex = Tenant.objects.create(name="Globex", slug="globex")
    assert "acme-lab" not in pool_ids(pve)
    url = f"/api/v1/tenants/{acme.pk}/pools/"

    made = api.post(url, {"cluster": sim_cluster.pk, "pool": "acme-lab"}, expect=201)
    assert (made["pool"], made["cluster"], made["created_on_proxmox"]) == ("acme-lab", sim_cluster.pk, True)
    assert "acme-lab" in pool_ids(pve)
    assert TenantPool.objects.get(tenant=acme).pool == "acme-lab"
    entry = AuditEntry.objects.get(action="tenant.pool_assign")
    assert (entry.result, entry.tenant_id, entry.detail["created_on_proxmox"]) == ("success", acme.pk, True)

    # A pool Proxmox has already is taken as it is.
    kept = api.post(f"/api/v1/tenants/{globex.pk}/pools/", {"cluster": sim_cluster.pk, "pool": "globex"}, expect=201)
    assert kept["created_on_proxmox"] is False

    before = pool_ids(pve)
    errors = api.post(url, {"cluster": sim_cluster.pk, "pool": "acme-two"}, expect=400)["errors"]
    assert "one pool per cluster" in errors["cluster"][0]
    errors = api.post(f"/api/v1/tenants/{globex.pk}/pools/", {"cluster": sim_cluster.pk, "pool": "acme-lab"},
                      expect=400)["errors"]
    assert "already ACME's" in errors["pool"][0]
    other = Tenant.objects.create(name="Initech", slug="initech")
    errors = api.post(f"/api/v1/tenants/{other.pk}/pools/", {"cluster": sim_cluster.pk, "pool": "bad/../id"},
                      expect=400)["errors"]
    assert "letters, digits" in errors["pool"][0]
    assert "cluster" in api.post(f"/api/v1/tenants/{other.pk}/pools/", {"cluster": 999999, "pool": "x"},
                                 expect=400)["errors"]

    admin = django_user_model.objects.create_user(username="initech-admin", password="tenant-pass-1234")
    Membership.objects.create(user=admin, tenant=other, role="admin")
    Api(admin).post(f"/api/v1/tenants/{other.pk}/pools/", {"cluster": sim_cluster.pk, "pool": "initech"}, expect=403)
    assert AuditEntry.objects.filter(action="tenant.manage", result="denied", username="initech-admin").count() == 1
    assert pool_ids(pve) == before  # nothing made on Proxmox by a refused request
    assert not TenantPool.objects.filter(tenant=other).exists()


def test_the_proxmox_call_never_runs_inside_a_transaction(sim_cluster, operator):
    tenant = Tenant.objects.create(name="ACME", slug="acme")
    with pytest.raises(RuntimeError, match="outside a database transaction"), transaction.atomic():
        tenant_pool_assign(tenant=tenant, cluster=sim_cluster, pool="acme-lab", actor=operator)


def test_the_tenant_page_assigns_a_pool_for_operators_only(sim_cluster, pve, client, django_user_model):
    from django.test import Client

    acme = Tenant.objects.create(name="ACME", slug="acme")
    page = client.get(f"/tenants/{acme.pk}/").content.decode()
    assert 'id="pool-assign"' in page
    response = client.post(f"/tenants/{acme.pk}/pools/", {"cluster": sim_cluster.pk, "pool": "acme-web"})
    assert response.status_code == 302
    assert "acme-web" in pool_ids(pve) and TenantPool.objects.filter(tenant=acme, pool="acme-web").exists()
    admin = django_user_model.objects.create_user(username="acme-admin", password="tenant-pass-1234")
    Membership.objects.create(user=admin, tenant=acme, role="admin")
    browser = Client()
    browser.force_login(admin)
    assert 'id="pool-assign"' not in browser.get(f"/tenants/{acme.pk}/").content.decode()
    assert browser.post(f"/tenants/{acme.pk}/pools/", {"cluster": sim_cluster.pk, "pool": "x"}).status_code == 403
