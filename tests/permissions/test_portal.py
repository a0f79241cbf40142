"""A tenant's self-service portal: their dashboard (guests, quota bars, operations), navigation by
policy, the tenant switcher, and every UI page rendering (never a 500) for a tenant member."""

from __future__ import annotations

import pytest
from django.test import Client

from tests.permissions.test_scoping import MARK, routes, url_for, world  # noqa: F401 (fixture)

pytestmark = pytest.mark.django_db


def _client(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def test_a_tenant_member_sees_their_portal(world):
    from apps.guests.models import Guest
    from apps.permissions.models import Quota

    Quota.objects.create(tenant=world["acme"], resource="vcpus", limit=16)
    Quota.objects.create(tenant=world["acme"], resource="memory", limit=64 * 1024**3)
    page = _client(world["users"]["acme-member"]).get("/")
    assert page.status_code == 200
    html = page.content.decode()
    assert "dashboard/tenant.html" in [t.name for t in page.templates]
    assert MARK in html  # acme's guests (renamed by the fixture)
    for name in Guest.objects.filter(tenant=world["globex"]).values_list("name", flat=True):
        assert f">{name}<" not in html
    assert 'id="tenant-quota"' in html and 'data-quota="vcpus"' in html and "of 16" in html and "of 64.0 GiB" in html
    assert "Register a Proxmox VE cluster" not in html and "Add cluster" not in html
    assert 'href="/admin/"' not in html
    nav = html[html.index('aria-label="Main"'):html.index("</nav>")]
    for hidden in ("/clusters/", "/nodes/", "/gpus/"):
        assert f'href="{hidden}"' not in nav
    for shown in ("/guests/", "/operations/", "/tokens/"):
        assert f'href="{shown}"' in nav
    assert 'name="tenant"' not in html  # one membership: no switcher


def test_operators_keep_the_datacenter_dashboard(world, admin_user):
    page = _client(admin_user).get("/")
    assert "dashboard/dashboard.html" in [t.name for t in page.templates]
    nav = page.content.decode()
    assert 'href="/clusters/"' in nav and 'href="/nodes/"' in nav


def test_the_tenant_switcher_changes_the_active_tenant_only_to_ones_membership(world):
    from apps.permissions.models import Membership, Tenant

    user = world["users"]["acme-member"]
    Membership.objects.create(user=user, tenant=world["globex"], role="member")
    client = _client(user)
    html = client.get("/").content.decode()
    assert 'name="tenant"' in html and 'data-active-tenant="acme"' in html
    response = client.post("/tenants/switch/", {"tenant": world["globex"].pk})
    assert response.status_code == 302 and client.session["tenant_id"] == world["globex"].pk
    html = client.get("/").content.decode()
    guests = html[html.index('id="tenant-guests"'):html.index("</section>", html.index('id="tenant-guests"'))]
    assert 'data-active-tenant="globex"' in html and MARK not in guests and ">103</a>" in guests
    # The acme guest is now another tenant's: 404.
    assert client.get(f"/guests/{world['objects']['guest']}/").status_code == 404
    stranger = Tenant.objects.create(name="Initech", slug="initech")
    assert client.post("/tenants/switch/", {"tenant": stranger.pk}).status_code == 404
    assert client.post("/tenants/switch/", {"tenant": "x"}).status_code == 404
    assert client.session["tenant_id"] == world["globex"].pk


@pytest.mark.parametrize("username", ["acme-member", "acme-admin"])
def test_every_page_renders_for_a_tenant_user(world, username):
    """GET every UI route with acme's objects: 200, a redirect, 403/404/405, never a 500."""
    client = _client(world["users"][username])
    failures = []
    for route in routes():
        if route.startswith(("api/", "admin/", "ws/")) or route in ("logout/", "healthz"):  # healthz: 503 without a worker
            continue
        url = url_for(route, world["objects"])
        response = client.get(url)
        if response.status_code >= 500:
            failures.append(f"{url}: {response.status_code}")
    assert failures == []
