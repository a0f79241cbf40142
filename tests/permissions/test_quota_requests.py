"""Quota requests: a tenant admin asks for new limits with a reason; operators approve (the limits
apply) or decline with a reason; both audited; page and API; scoped (other tenants 404, members
see none and may not ask, only operators decide). The tenant list shows each tenant's quota bars."""

from __future__ import annotations

import pytest
from django.test import Client

from apps.core.models import AuditEntry
from apps.permissions.models import Membership, Quota, QuotaRequest, Tenant
from tests.conftest import Api

pytestmark = pytest.mark.django_db

GIB = 1024**3
URL = "/api/v1/quota-requests/"


@pytest.fixture
def tenants(django_user_model, operator):
    acme = Tenant.objects.create(name="ACME", slug="acme")
    globex = Tenant.objects.create(name="Globex", slug="globex")
    users = {"operator": operator}
    for tenant in (acme, globex):
        for role in ("admin", "member"):
            users[f"{tenant.slug}-{role}"] = user = django_user_model.objects.create_user(
                username=f"{tenant.slug}-{role}", password="tenant-pass-1234")
            Membership.objects.create(user=user, tenant=tenant, role=role)
    Quota.objects.create(tenant=acme, resource="vcpus", limit=8)
    Quota.objects.create(tenant=acme, resource="memory", limit=16 * GIB)
    return {"acme": acme, "globex": globex, "users": users}


def _limits(tenant) -> dict:
    return dict(Quota.objects.filter(tenant=tenant).values_list("resource", "limit"))


def test_an_admin_asks_and_an_operator_approves_through_the_api(tenants):
    acme, users = tenants["acme"], tenants["users"]
    admin, operator = Api(users["acme-admin"]), Api(users["operator"])
    asked = admin.post(URL, {"vcpus": 32, "memory": 64 * GIB, "reason": "the spring lab course"}, expect=201)
    assert (asked["tenant"], asked["state"], asked["requested_by"]) == (acme.pk, "pending", "acme-admin")
    assert asked["limits"] == {"vcpus": 32, "memory": 64 * GIB}
    assert _limits(acme) == {"vcpus": 8, "memory": 16 * GIB}  # nothing changes before an operator decides

    assert [r["id"] for r in operator.get(URL, {"state": "pending"})["results"]] == [asked["id"]]
    approved = operator.post(f"{URL}{asked['id']}/approve/", {}, expect=200)
    assert (approved["state"], approved["decided_by"]) == ("approved", "operator")
    assert _limits(acme) == {"vcpus": 32, "memory": 64 * GIB}
    assert "state" in operator.post(f"{URL}{asked['id']}/decline/", {"reason": "late"}, expect=400)["errors"]
    actions = list(AuditEntry.objects.filter(tenant_id=acme.pk, action__startswith="quota.")
                   .order_by("pk").values_list("action", "username", "result"))
    assert actions == [("quota.request", "acme-admin", "success"), ("quota.set", "operator", "success"),
                       ("quota.request_approve", "operator", "success")]


def test_a_decline_needs_a_reason_and_changes_nothing(tenants):
    acme, users = tenants["acme"], tenants["users"]
    asked = Api(users["acme-admin"]).post(URL, {"guests": 100, "reason": "more students"}, expect=201)
    operator = Api(users["operator"])
    assert "reason" in operator.post(f"{URL}{asked['id']}/decline/", {}, expect=400)["errors"]
    declined = operator.post(f"{URL}{asked['id']}/decline/", {"reason": "the cluster is full until May"})
    assert (declined["state"], declined["decision_reason"]) == ("declined", "the cluster is full until May")
    assert _limits(acme) == {"vcpus": 8, "memory": 16 * GIB}
    entry = AuditEntry.objects.get(action="quota.request_decline")
    assert (entry.tenant_id, entry.detail["reason"]) == (acme.pk, "the cluster is full until May")
    # The tenant's admin reads the answer.
    mine = Api(users["acme-admin"]).get(f"{URL}{asked['id']}/")
    assert (mine["state"], mine["decision_reason"]) == ("declined", "the cluster is full until May")


def test_bad_requests_name_the_field(tenants):
    admin = Api(tenants["users"]["acme-admin"])
    assert "reason" in admin.post(URL, {"vcpus": 32}, expect=400)["errors"]
    assert "vcpus" in admin.post(URL, {"vcpus": -1, "reason": "x"}, expect=400)["errors"]
    assert "limits" in admin.post(URL, {"reason": "just because"}, expect=400)["errors"]
    assert not QuotaRequest.objects.exists()


def test_scope_members_other_tenants_and_who_decides(tenants):
    acme, users = tenants["acme"], tenants["users"]
    asked = Api(users["acme-admin"]).post(URL, {"vcpus": 16, "reason": "builds"}, expect=201)
    member = Api(users["acme-member"])
    member.post(URL, {"vcpus": 99, "reason": "mine"}, expect=403)  # members may not ask
    assert AuditEntry.objects.filter(action="quota.request", result="denied", username="acme-member").count() == 1
    assert member.get(URL)["results"] == []
    member.get(f"{URL}{asked['id']}/", expect=404)
    other = Api(users["globex-admin"])
    assert other.get(URL)["results"] == []
    other.get(f"{URL}{asked['id']}/", expect=404)
    other.post(f"{URL}{asked['id']}/approve/", {}, expect=404)
    other.post(URL, {"tenant": acme.pk, "vcpus": 1, "reason": "x"}, expect=404)  # not theirs to ask for
    Api(users["acme-admin"]).post(f"{URL}{asked['id']}/approve/", {}, expect=403)  # not their own approver
    assert QuotaRequest.objects.get().state == "pending"


def test_pages_ask_decide_and_show_usage_per_tenant(tenants):
    acme, users = tenants["acme"], tenants["users"]
    admin = Client()
    admin.force_login(users["acme-admin"])
    assert "Ask for new limits" in admin.get(f"/tenants/{acme.pk}/").content.decode()
    bad = admin.post(f"/tenants/{acme.pk}/quota-requests/new/", {"memory_gib": "64"})
    assert bad.status_code == 400 and "This field is required" in bad.content.decode()
    response = admin.post(f"/tenants/{acme.pk}/quota-requests/new/", {"memory_gib": "64", "reason": "bigger VMs"})
    assert response.status_code == 302
    asked = QuotaRequest.objects.get()
    assert (asked.limits, asked.requested_by) == ({"memory": 64 * GIB}, users["acme-admin"])
    member = Client()
    member.force_login(users["acme-member"])
    assert member.get(f"/tenants/{acme.pk}/quota-requests/new/").status_code == 403
    assert "bigger VMs" not in member.get("/quota-requests/").content.decode()

    operator = Client()
    operator.force_login(users["operator"])
    listing = operator.get("/tenants/").content.decode()
    assert 'data-resource="vcpus"' in listing and "1 request waiting" in listing
    page = operator.get("/quota-requests/").content.decode()
    assert "bigger VMs" in page and "Memory 64.0 GiB" in page and "data-confirm=" in page
    operator.post(f"/quota-requests/{asked.pk}/decide/", {"decision": "approve"})
    assert _limits(acme)["memory"] == 64 * GIB
    assert admin.post(f"/quota-requests/{asked.pk}/decide/", {"decision": "decline", "reason": "x"}).status_code == 403
