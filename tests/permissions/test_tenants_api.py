"""/api/v1/tenants/ (+ quota, members) and /api/v1/tokens/ scoping, and the tokens and tenant pages.

Operators manage all tenants; a tenant's users read their own (404 for others', 403 for writes
on their own); tenant admins manage members and see/revoke the tenant's tokens, members only
their own. Bad input names the field.
"""

from __future__ import annotations

import pytest
from django.test import Client

from tests.conftest import Api

PASSWORD = "tenant-pass-1234"


@pytest.fixture
def tenants(db, django_user_model):
    from apps.permissions.models import Membership, Quota, Reservation, Tenant

    acme = Tenant.objects.create(name="ACME", slug="acme")
    globex = Tenant.objects.create(name="Globex", slug="globex")
    users = {}
    for tenant in (acme, globex):
        for role in ("admin", "member"):
            users[f"{tenant.slug}-{role}"] = user = django_user_model.objects.create_user(
                username=f"{tenant.slug}-{role}", password=PASSWORD)
            Membership.objects.create(user=user, tenant=tenant, role=role)
    users["outsider"] = django_user_model.objects.create_user(username="outsider", password=PASSWORD)
    Quota.objects.create(tenant=acme, resource="vcpus", limit=16)
    Quota.objects.create(tenant=acme, resource="memory", limit=32 * 2**30)
    import uuid

    Reservation.objects.create(tenant=acme, operation_id=uuid.uuid4(), resource="vcpus", amount=4)
    return {"acme": acme, "globex": globex, "users": users}


def test_operators_manage_tenants(api, tenants):
    names = {t["slug"] for t in api.get("/api/v1/tenants/")["results"]}
    assert names == {"acme", "globex"}
    created = api.post("/api/v1/tenants/", {"name": "Initech", "slug": "initech", "lease_days": 30}, expect=201)
    api.patch(f"/api/v1/tenants/{created['id']}/", {"description": "labs"})
    bad = api.post("/api/v1/tenants/", {"name": "Bad", "slug": "Bad Slug"}, expect=400)
    assert "slug" in bad["errors"]
    api.delete(f"/api/v1/tenants/{created['id']}/")
    from apps.core.models import AuditEntry

    assert set(AuditEntry.objects.filter(action__startswith="tenant.").values_list("action", flat=True)) == {
        "tenant.create", "tenant.update", "tenant.delete"}


def test_tenant_users_read_their_own_tenant_only(tenants):
    acme, globex = tenants["acme"], tenants["globex"]
    member = Api(tenants["users"]["acme-member"])
    assert [t["slug"] for t in member.get("/api/v1/tenants/")["results"]] == ["acme"]
    member.get(f"/api/v1/tenants/{acme.pk}/")
    member.get(f"/api/v1/tenants/{globex.pk}/", expect=404)
    member.patch(f"/api/v1/tenants/{acme.pk}/", {"description": "mine now"}, expect=403)
    member.patch(f"/api/v1/tenants/{globex.pk}/", {"description": "theirs"}, expect=404)
    member.post("/api/v1/tenants/", {"name": "X", "slug": "x"}, expect=403)
    Api(tenants["users"]["acme-admin"]).delete(f"/api/v1/tenants/{acme.pk}/", expect=403)
    assert Api(tenants["users"]["outsider"]).get("/api/v1/tenants/")["results"] == []


def test_quota_shows_limit_used_reserved(tenants):
    acme, globex = tenants["acme"], tenants["globex"]
    member = Api(tenants["users"]["acme-member"])
    rows = {row["resource"]: row for row in member.get(f"/api/v1/tenants/{acme.pk}/quota/")}
    assert rows["vcpus"]["limit"] == 16 and rows["vcpus"]["reserved"] == 4 and rows["vcpus"]["label"] == "vCPUs"
    assert rows["memory"]["limit"] == 32 * 2**30
    assert rows["guests"]["limit"] is None  # no row: unlimited
    member.get(f"/api/v1/tenants/{globex.pk}/quota/", expect=404)


def test_tenant_admins_manage_members(tenants):
    acme, globex = tenants["acme"], tenants["globex"]
    admin = Api(tenants["users"]["acme-admin"])
    outsider = tenants["users"]["outsider"]
    url = f"/api/v1/tenants/{acme.pk}/members/"
    assert {m["username"] for m in admin.get(url)} == {"acme-admin", "acme-member"}
    added = admin.post(url, {"username": "outsider", "role": "member"}, expect=201)
    assert added == {**added, "id": outsider.pk, "role": "member"}
    assert "username" in admin.post(url, {"username": "nobody"}, expect=400)["errors"]
    assert "username" in admin.post(url, {"username": "outsider"}, expect=400)["errors"]
    assert "role" in admin.post(url, {"username": "globex-member", "role": "owner"}, expect=400)["errors"]
    admin.patch(f"{url}{outsider.pk}/", {"role": "admin"})
    # The outsider (now admin) sees acme; removing them takes their acme tokens too.
    from apps.permissions.models import ApiToken

    ApiToken.objects.create(outsider, name="x", tenant=acme)
    admin.delete(f"{url}{outsider.pk}/")
    assert not ApiToken.objects.filter(user=outsider).exists()
    # The last admin stays.
    admin_pk = tenants["users"]["acme-admin"].pk
    assert "role" in admin.patch(f"{url}{admin_pk}/", {"role": "member"}, expect=400)["errors"]
    assert "role" in admin.delete(f"{url}{admin_pk}/", expect=400)["errors"]

    member = Api(tenants["users"]["acme-member"])
    assert [m["username"] for m in member.get(url)] == ["acme-member"]  # only their own row
    member.post(url, {"username": "outsider"}, expect=403)
    member.delete(f"{url}{admin_pk}/", expect=404)
    other = Api(tenants["users"]["globex-admin"])
    other.get(url, expect=404)
    other.post(url, {"username": "outsider"}, expect=404)
    from apps.core.models import AuditEntry

    assert {"membership.add", "membership.change", "membership.remove"} <= set(
        AuditEntry.objects.filter(tenant_id=acme.pk).values_list("action", flat=True))
    assert AuditEntry.objects.filter(action="membership.manage", result="denied", username="acme-member").exists()
    assert not AuditEntry.objects.filter(tenant_id=globex.pk).exclude(username__startswith="globex").exists()


def test_tokens_scoped_by_tenant_and_role(tenants):
    from apps.permissions.models import ApiToken

    acme, globex = tenants["acme"], tenants["globex"]
    users = tenants["users"]
    member_token, _ = ApiToken.objects.create(users["acme-member"], name="member's", tenant=acme)
    admin_token, _ = ApiToken.objects.create(users["acme-admin"], name="admin's", tenant=acme)
    globex_token, _ = ApiToken.objects.create(users["globex-member"], name="globex's", tenant=globex)

    member = Api(users["acme-member"])
    assert {t["name"] for t in member.get("/api/v1/tokens/")["results"]} == {"member's"}
    member.delete(f"/api/v1/tokens/{admin_token.token_key}/", expect=404)
    admin = Api(users["acme-admin"])
    assert {t["name"] for t in admin.get("/api/v1/tokens/")["results"]} == {"member's", "admin's"}
    admin.delete(f"/api/v1/tokens/{globex_token.token_key}/", expect=404)
    admin.delete(f"/api/v1/tokens/{member_token.token_key}/")  # a tenant admin revokes the tenant's
    assert not ApiToken.objects.filter(pk=member_token.pk).exists()

    # Create: bounded expiry, a tenant the user belongs to, defaulting to their active one.
    assert "expiry_days" in member.post("/api/v1/tokens/", {"name": "x", "expiry_days": 0}, expect=400)["errors"]
    assert "expiry_days" in member.post("/api/v1/tokens/", {"name": "x", "expiry_days": 9999}, expect=400)["errors"]
    assert "tenant" in member.post("/api/v1/tokens/", {"name": "x", "tenant": globex.pk}, expect=400)["errors"]
    assert "name" in member.post("/api/v1/tokens/", {}, expect=400)["errors"]
    made = member.post("/api/v1/tokens/", {"name": "x"}, expect=201)
    assert made["tenant"] == acme.pk and made["token"]
    token = ApiToken.objects.get(token_key=made["id"])
    assert 89 <= (token.expiry - token.created).days <= 90
    # Outside any tenant (not an operator): no role to create one with.
    Api(users["outsider"]).post("/api/v1/tokens/", {"name": "x"}, expect=403)


def test_operator_tokens_need_no_tenant(api, operator, tenants):
    made = api.post("/api/v1/tokens/", {"name": "ops"}, expect=201)
    assert made["tenant"] is None
    from apps.permissions.models import ApiToken

    ApiToken.objects.create(tenants["users"]["globex-member"], name="theirs", tenant=tenants["globex"])
    assert "theirs" in {t["name"] for t in api.get("/api/v1/tokens/")["results"]}


def test_token_endpoint_issues_knox_tokens(anon_client, tenants):
    from apps.permissions.models import ApiToken

    response = anon_client.post("/api/v1/auth/token/", {"username": "globex-member", "password": PASSWORD,
                                                         "read_only": True}, content_type="application/json")
    assert response.status_code == 200, response.content
    body = response.json()
    token = ApiToken.objects.get(token_key=body["token"][:15])
    assert token.tenant == tenants["globex"] and token.read_only and body["read_only"] is True
    refused = anon_client.post("/api/v1/auth/token/", {"username": "globex-member", "password": PASSWORD,
                                                       "tenant": tenants["acme"].pk}, content_type="application/json")
    assert refused.status_code == 400 and "tenant" in refused.json()["errors"]


def _login(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def test_tokens_page_shows_the_secret_once(tenants):
    from apps.permissions.models import ApiToken

    client = _login(tenants["users"]["acme-admin"])
    page = client.get("/tokens/")
    assert page.status_code == 200 and b"New token" in page.content
    created = client.post("/tokens/", {"name": "laptop", "expiry_days": "7", "tenant": tenants["acme"].pk})
    assert created.status_code == 200
    token = ApiToken.objects.get(name="laptop")
    html = created.content.decode()
    secret = html.split('data-testid="token-secret"', 1)[1].split(">", 1)[1].split("<", 1)[0].strip()
    assert secret.startswith(token.token_key) and "Copy" in html
    assert secret not in client.get("/tokens/").content.decode()
    bad = client.post("/tokens/", {"name": "", "expiry_days": "0"})
    assert bad.status_code == 400 and "This field is required" in bad.content.decode()
    revoke = f"/tokens/{token.token_key}/revoke/"
    assert f'action="{revoke}"' in html and "data-confirm=" in html
    other = _login(tenants["users"]["globex-admin"])
    assert other.post(revoke).status_code == 404
    assert client.post(revoke).status_code == 302
    assert not ApiToken.objects.filter(name="laptop").exists()


def test_tenant_page_members_and_quotas(tenants):
    acme, globex = tenants["acme"], tenants["globex"]
    admin = _login(tenants["users"]["acme-admin"])
    assert admin.get("/tenants/").url == f"/tenants/{acme.pk}/"
    page = admin.get(f"/tenants/{acme.pk}/").content.decode()
    assert "vCPUs" in page and "acme-member" in page and "Add member" in page
    assert admin.get(f"/tenants/{globex.pk}/").status_code == 404
    assert admin.post(f"/tenants/{acme.pk}/members/", {"username": "outsider", "role": "member"}).status_code == 302
    assert "outsider" in admin.get(f"/tenants/{acme.pk}/").content.decode()
    member = _login(tenants["users"]["acme-member"])
    page = member.get(f"/tenants/{acme.pk}/").content.decode()
    assert "vCPUs" in page and "Add member" not in page and "outsider" not in page
    assert member.post(f"/tenants/{acme.pk}/members/", {"username": "globex-member"}).status_code == 403
