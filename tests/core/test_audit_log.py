"""The audit log as people use it: logins, logouts and failed logins recorded; a token's requests
shown as the token; who sees which entries; the filters; the CSV export (page and API) with the
same scope and filters, streamed, its cells safe from spreadsheet formulas."""

from __future__ import annotations

import csv
import io
from datetime import timedelta

import pytest
from django.test import Client
from django.utils import timezone
from rest_framework.test import APIClient

from apps.core.audit_export import safe_cell
from apps.core.models import AuditEntry
from apps.core.services import audit_log

pytestmark = pytest.mark.django_db

PASSWORD = "tenant-pass-1234"


@pytest.fixture
def people(django_user_model, operator):
    from apps.permissions.models import Membership, Tenant

    acme = Tenant.objects.create(name="ACME", slug="acme")
    globex = Tenant.objects.create(name="Globex", slug="globex")
    users = {"operator": operator}
    for tenant in (acme, globex):
        for role in ("admin", "member"):
            users[f"{tenant.slug}-{role}"] = user = django_user_model.objects.create_user(
                username=f"{tenant.slug}-{role}", password=PASSWORD)
            Membership.objects.create(user=user, tenant=tenant, role=role)
    return {"acme": acme, "globex": globex, "users": users}


def _entries(**filters):
    return list(AuditEntry.objects.filter(**filters).order_by("pk"))


def test_logins_logouts_and_failed_logins_are_recorded(people):
    acme = people["acme"]
    browser = Client(REMOTE_ADDR="198.51.100.7")
    assert browser.post("/login/", {"username": "acme-member", "password": "wrong"}).status_code == 200
    assert browser.post("/login/", {"username": "acme-member", "password": PASSWORD}).status_code == 302
    assert browser.post("/logout/").status_code == 302

    failed, = _entries(action="core.login", result="failure")
    assert (failed.user, failed.remote_addr, failed.detail["login_as"]) == (None, "198.51.100.7", "acme-member")
    login, = _entries(action="core.login", result="success")
    assert (login.username, login.tenant_id, login.remote_addr) == ("acme-member", acme.pk, "198.51.100.7")
    logout, = _entries(action="core.logout")
    assert (logout.username, logout.result, logout.remote_addr) == ("acme-member", "success", "198.51.100.7")
    # The user filter finds the failed attempt made in their name too.
    api = APIClient()
    api.force_authenticate(people["users"]["operator"])
    found = api.get("/api/v1/audit/", {"username": "acme-member", "action": "core.log"}).json()["results"]
    assert [(e["action"], e["result"]) for e in found] == [("core.logout", "success"), ("core.login", "success"),
                                                           ("core.login", "failure")]


def test_a_token_request_is_audited_as_the_token(people):
    from apps.permissions.models import ApiToken

    admin = people["users"]["acme-admin"]
    token, secret = ApiToken.objects.create(admin, expiry=None, name="ci deploy", tenant=people["acme"])
    client = APIClient(REMOTE_ADDR="192.0.2.44")
    client.credentials(HTTP_AUTHORIZATION=f"Token {secret}")
    assert client.post("/api/v1/tokens/", {"name": "made by ci"}, format="json").status_code == 201
    entry, = _entries(action="token.create")
    assert (entry.username, entry.token, entry.remote_addr) == ("acme-admin", str(token), "192.0.2.44")
    assert entry.token.startswith("ci deploy (") and secret not in entry.token
    listed = client.get("/api/v1/audit/", {"token": "ci deploy"}).json()["results"]
    assert [e["id"] for e in listed] == [entry.pk] and listed[0]["token"] == str(token)
    # A session's entry names no token; the page shows "via token" only for the token's.
    session = Client()
    session.force_login(people["users"]["operator"])
    page = session.get("/audit/").content.decode()
    assert f"via token {token}" in page


def test_operators_see_all_tenant_admins_their_tenant_members_their_own(people):
    users, acme, globex = people["users"], people["acme"], people["globex"]
    audit_log(user=users["acme-member"], action="guests.guest_start", target="vm 100", result="accepted",
              tenant_id=acme.pk)
    audit_log(user=users["acme-admin"], action="membership.add", target="x", result="success", tenant_id=acme.pk)
    audit_log(user=users["globex-member"], action="guests.guest_stop", target="vm 200", result="accepted",
              tenant_id=globex.pk)
    audit_log(user=None, action="core.login", target="login as 'root'", result="failure")

    def seen(user):
        client = APIClient()
        client.force_authenticate(user)
        return sorted(e["action"] for e in client.get("/api/v1/audit/").json()["results"])

    assert seen(users["operator"]) == ["core.login", "guests.guest_start", "guests.guest_stop", "membership.add"]
    assert seen(users["acme-admin"]) == ["guests.guest_start", "membership.add"]
    assert seen(users["acme-member"]) == ["guests.guest_start"]
    assert seen(users["globex-admin"]) == ["guests.guest_stop"]
    other = AuditEntry.objects.get(action="guests.guest_stop")
    client = APIClient()
    client.force_authenticate(users["acme-admin"])
    assert client.get(f"/api/v1/audit/{other.pk}/").status_code == 404
    session = Client()
    session.force_login(users["acme-admin"])
    assert session.get(f"/audit/{other.pk}/").status_code == 404


def test_filters_by_tenant_action_object_result_and_dates(people, operator):
    acme, globex = people["acme"], people["globex"]
    old = audit_log(user=operator, action="guests.guest_delete", target="web-01", result="success",
                    tenant_id=acme.pk)
    AuditEntry.objects.filter(pk=old.pk).update(created=timezone.now() - timedelta(days=10))
    audit_log(user=operator, action="guests.guest_delete", target="db-01", result="failure", tenant_id=acme.pk)
    audit_log(user=operator, action="guests.guest_start", target="web-02", result="denied", tenant_id=globex.pk)
    api = APIClient()
    api.force_authenticate(operator)

    def targets(**params):
        response = api.get("/api/v1/audit/", params)
        assert response.status_code == 200, response.content
        return sorted(e["target_repr"] for e in response.json()["results"])

    assert targets(tenant=acme.pk) == ["db-01", "web-01"]
    assert targets(action="guests.guest_del") == ["db-01", "web-01"]
    assert targets(target="web") == ["web-01", "web-02"]
    assert targets(result="denied") == ["web-02"]
    since = (timezone.now() - timedelta(days=1)).isoformat()
    assert targets(created_after=since, tenant=acme.pk) == ["db-01"]
    assert targets(created_before=since) == ["web-01"]
    bad = api.get("/api/v1/audit/", {"created_after": "2026-01-01T00:00:00+23:00"})
    assert bad.status_code == 400 and "created_after" in bad.json()["errors"]


def _csv(response) -> list[dict]:
    assert response.streaming, "the export is streamed"
    assert response["Content-Type"].startswith("text/csv")
    body = b"".join(response.streaming_content).decode()
    return list(csv.DictReader(io.StringIO(body)))


def test_csv_export_has_the_lists_scope_and_filters_page_and_api(people):
    users, acme, globex = people["users"], people["acme"], people["globex"]
    audit_log(user=users["acme-member"], action="guests.guest_start", target="=HYPERLINK(\"http://x\")",
              result="accepted", tenant_id=acme.pk, detail={"note": "+1"})
    audit_log(user=users["acme-admin"], action="membership.add", target="@SUM(A1)", result="success",
              tenant_id=acme.pk)
    audit_log(user=users["globex-admin"], action="membership.add", target="globex-secret", result="success",
              tenant_id=globex.pk)

    page = Client()
    page.force_login(users["acme-admin"])
    rows = [r for r in _csv(page.get("/audit/export.csv")) if r["action"] != "core.login"]  # force_login's
    assert sorted(r["object"] for r in rows) == ["'=HYPERLINK(\"http://x\")", "'@SUM(A1)"]
    assert all(r["tenant_id"] == str(acme.pk) for r in rows)
    rows = _csv(page.get("/audit/export.csv", {"action": "membership."}))
    assert [(r["user"], r["object"], r["result"]) for r in rows] == [("acme-admin", "'@SUM(A1)", "success")]
    assert page.get("/audit/export.csv", {"tenant": "-1"}).status_code == 400

    api = APIClient()
    api.force_authenticate(users["acme-member"])
    rows = _csv(api.get("/api/v1/audit/export/", HTTP_ACCEPT="text/csv"))
    assert [r["object"] for r in rows] == ["'=HYPERLINK(\"http://x\")"]  # a member: their own entries only
    operator = APIClient()
    operator.force_authenticate(users["operator"])
    rows = _csv(operator.get("/api/v1/audit/export/", {"username": "globex-admin"}))
    assert [r["object"] for r in rows] == ["globex-secret"]
    assert list(rows[0]) == ["when", "user", "token", "tenant_id", "action", "object_type", "object_id", "object",
                             "result", "address", "detail"]
    assert operator.get("/api/v1/audit/export/", {"result": "nope"}).status_code == 400

    # The page offers the export with the filters it shows.
    listing = page.get("/audit/", {"result": "success"}).content.decode()
    assert 'href="/audit/export.csv?result=success"' in listing


@pytest.mark.parametrize("value, cell", [
    ("=1+1", "'=1+1"), ("+33 1 23", "'+33 1 23"), ("-2", "'-2"), ("@A1", "'@A1"), ("\tx", "'\tx"),
    ("\rx", "'\rx"), ("web-01", "web-01"), ("", ""), (None, ""), (42, "42"),
])
def test_cells_never_start_a_formula(value, cell):
    assert safe_cell(value) == cell


def test_export_streams_every_entry_in_batches(operator, monkeypatch):
    monkeypatch.setattr("apps.core.audit_export.BATCH", 3)
    for i in range(8):
        audit_log(user=operator, action="x.y", target=f"t{i}", result="success")
    client = Client()
    client.force_login(operator)
    rows = _csv(client.get("/audit/export.csv", {"action": "x."}))
    assert [r["object"] for r in rows] == [f"t{i}" for i in reversed(range(8))]
