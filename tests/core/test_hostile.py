"""Hostile input gets a clean answer: login lockout, API rate limit, bad dates, deep JSON, huge bodies."""

import datetime
import json

import pytest
from axes.models import AccessAttempt
from django.test import Client
from django.utils import timezone
from rest_framework.test import APIClient

from apps.core.models import AuditEntry
from apps.core.services import audit_log
from tests.conftest import OPERATOR_PASSWORD, USER_PASSWORD

pytestmark = pytest.mark.django_db

LOCKED = "Too many failed logins"


@pytest.fixture(autouse=True)
def fast_password_hashing(settings):
    # Before the user fixtures: their passwords are then hashed (and checked) in microseconds.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


def _ui_login(client, username, password):
    return client.post("/login/", {"username": username, "password": password})


def _admin_login(client, username, password):
    return client.post("/admin/login/", {"username": username, "password": password, "next": "/admin/"})


def _api_login(client, username, password):
    return client.post("/api/v1/auth/token/", {"username": username, "password": password}, format="json")


def _expire_cool_off():
    """Move every recorded failure back past the cool-off, as if its minutes had gone by."""
    AccessAttempt.objects.update(attempt_time=timezone.now() - datetime.timedelta(hours=1))


# --- login throttling -------------------------------------------------------------------------------


@pytest.mark.parametrize("login", [_ui_login, _admin_login], ids=["login", "admin"])
def test_wrong_passwords_lock_the_account_out_with_a_clear_page(login, operator, user):
    attacker = Client(REMOTE_ADDR="203.0.113.7")
    answers = [login(attacker, "operator", f"wrong-{i}") for i in range(20)]
    assert answers[0].status_code == 200  # the form again, with its error
    assert answers[-1].status_code == 429
    page = answers[-1].content.decode()
    assert LOCKED in page and "15 minutes" in page
    assert answers[-1]["Retry-After"] == "900"

    # The right password is refused too until the cool-off ends.
    refused = login(attacker, "operator", OPERATOR_PASSWORD)
    assert refused.status_code == 429 and LOCKED in refused.content.decode()
    assert "_auth_user_id" not in attacker.session

    # Another account from another address is not affected.
    user.is_staff = True  # the admin site only lets staff in
    user.save()
    other = Client(REMOTE_ADDR="198.51.100.20")
    assert login(other, "member", USER_PASSWORD).status_code == 302

    # After the cool-off the right password works again.
    _expire_cool_off()
    assert login(attacker, "operator", OPERATOR_PASSWORD).status_code == 302


def test_the_account_is_locked_from_every_address_and_the_address_for_every_account(operator, user):
    for i in range(10):
        _ui_login(Client(REMOTE_ADDR=f"203.0.113.{i + 1}"), "operator", "wrong")
    assert _ui_login(Client(REMOTE_ADDR="192.0.2.50"), "operator", OPERATOR_PASSWORD).status_code == 429

    spray = Client(REMOTE_ADDR="198.51.100.9")
    for i in range(10):
        _ui_login(spray, f"guess{i}", "wrong")
    assert _ui_login(spray, "member", USER_PASSWORD).status_code == 429
    assert _ui_login(Client(REMOTE_ADDR="198.51.100.10"), "member", USER_PASSWORD).status_code == 302


def test_token_endpoint_locks_out_with_json_429(operator):
    attacker = APIClient(REMOTE_ADDR="203.0.113.8")
    answers = [_api_login(attacker, "operator", f"wrong-{i}") for i in range(20)]
    assert answers[0].status_code == 400
    assert answers[-1].status_code == 429
    assert answers[-1]["Content-Type"] == "application/json"
    assert LOCKED in answers[-1].json()["detail"]
    refused = _api_login(attacker, "operator", OPERATOR_PASSWORD)
    assert refused.status_code == 429 and "token" not in refused.json()

    _expire_cool_off()
    assert _api_login(attacker, "operator", OPERATOR_PASSWORD).json()["token"]


def test_failed_logins_and_lockouts_are_audited(operator):
    attacker = Client(REMOTE_ADDR="203.0.113.9")
    for _ in range(11):
        _ui_login(attacker, "operator", "wrong")
    failures = AuditEntry.objects.filter(action="core.login", result="failure")
    assert failures.count() >= 9
    entry = failures.first()
    assert entry.remote_addr == "203.0.113.9" and entry.detail["login_as"] == "operator"
    assert "wrong" not in json.dumps(entry.detail)  # never the password
    assert AuditEntry.objects.filter(action="core.login_lockout", result="denied").exists()


def test_api_rate_limit_per_user_is_json_429(operator, user, settings):
    settings.REST_FRAMEWORK = {**settings.REST_FRAMEWORK,
                               "DEFAULT_THROTTLE_RATES": {"user": "5/minute", "anon": "5/minute"}}
    busy, calm = APIClient(), APIClient()
    busy.force_authenticate(operator)
    calm.force_authenticate(user)
    answers = [busy.get("/api/v1/audit/") for _ in range(6)]
    assert [a.status_code for a in answers[:5]] == [200] * 5
    assert answers[5].status_code == 429
    assert answers[5]["Content-Type"] == "application/json"
    assert "throttled" in answers[5].json()["detail"] and int(answers[5]["Retry-After"]) > 0
    assert calm.get("/api/v1/audit/").status_code == 200  # another user's own budget


# --- date filters -----------------------------------------------------------------------------------


@pytest.mark.parametrize("url", ["/api/v1/operations/", "/api/v1/audit/"])
@pytest.mark.parametrize("value,reason", [
    ("2026-01-01T00:00:00+18:00", "offset"),
    ("2026-01-01T00:00:00-15:00", "offset"),
    ("0001-01-01T00:00:00+01:00", "out of range"),
    ("9999-12-31T23:59:59-01:00", "out of range"),
    ("yesterday", "valid date"),
])
def test_bad_dates_are_400_naming_the_field(api, url, value, reason):
    body = api.get(url, {"created_after": value}, expect=400)
    assert reason in body["errors"]["created_after"][0]
    body = api.get(url, {"created_before": value}, expect=400)
    assert list(body["errors"]) == ["created_before"]


def test_dates_with_real_offsets_filter(api, operator):
    audit_log(user=operator, action="x.y", target=None, result="success")
    assert api.get("/api/v1/audit/", {"created_after": "2000-01-01T00:00:00+14:00"})["count"] == 1
    assert api.get("/api/v1/audit/", {"created_after": "9999-01-01T00:00:00-12:00"})["count"] == 0
    assert api.get("/api/v1/audit/", {"created_before": "2000-01-01T00:00"})["count"] == 0


@pytest.mark.parametrize("url", ["/operations/", "/audit/"])
def test_bad_dates_on_pages_show_the_error_in_the_filter_form(client, url):
    response = client.get(url, {"created_after": "2026-01-01T00:00:00+18:00"})
    assert response.status_code == 200
    page = response.content.decode()
    assert "From: UTC offset +1800 is out of range" in page


def test_bad_dates_in_an_htmx_filter_show_the_error_in_the_swapped_table(client):
    response = client.get("/operations/", {"created_after": "2026-01-01T00:00:00+18:00"}, HTTP_HX_REQUEST="true")
    assert response.status_code == 200
    assert "From: UTC offset +1800 is out of range" in response.content.decode()


def test_out_of_range_numbers_are_400(api):
    body = api.get("/api/v1/operations/", {"cluster_id": str(10**30)}, expect=400)
    assert "cluster_id" in body["errors"]


# --- bodies -----------------------------------------------------------------------------------------


def test_deeply_nested_json_is_400():
    client = APIClient()
    for depth in (50, 100_000):
        body = "[" * depth + "]" * depth
        response = client.post("/api/v1/auth/token/", body, content_type="application/json")
        assert response.status_code == 400, depth
        assert "nested deeper than 32 levels" in response.json()["detail"]


def test_body_over_the_limit_is_json_413(api, settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1000
    response = APIClient().post("/api/v1/auth/token/", {"username": "x" * 2000, "password": "y"}, format="json")
    assert response.status_code == 413
    assert response["Content-Type"] == "application/json"
    assert "at most 1000 bytes" in response.json()["detail"]


# --- bounds -----------------------------------------------------------------------------------------


def test_200000_tags_are_refused_before_anything_is_queued(api):
    from apps.operations.models import Operation

    body = {"source": "iso", "name": "many-tags", "tags": ["a"] * 200_000}
    errors = api.post("/api/v1/guests/create-vm/", body, expect=400)["errors"]
    assert "no more than 32" in errors["tags"][0]
    errors = api.post("/api/v1/guests/create-vm/", {**body, "tags": ["x" * 65]}, expect=400)["errors"]
    assert "no more than 64 characters" in str(errors["tags"])
    assert not Operation.objects.exists()


def test_huge_container_password_and_keys_are_refused(api):
    from apps.operations.models import Operation

    body = {"ostemplate": "nfs:vztmpl/debian.tar.zst", "hostname": "ct1"}
    response = api.client.post("/api/v1/guests/create-ct/", {**body, "password": "p" * 1024 * 1024}, format="json")
    assert response.status_code == 413 and response["Content-Type"] == "application/json"
    errors = api.post("/api/v1/guests/create-ct/", {**body, "password": "p" * 257}, expect=400)["errors"]
    assert "no more than 256 characters" in errors["password"][0]
    errors = api.post("/api/v1/guests/create-ct/", {**body, "ssh_keys": "k" * 20_000}, expect=400)["errors"]
    assert "no more than 16384 characters" in errors["ssh_keys"][0]
    assert not Operation.objects.exists()


def test_plans_bound_tags_keys_and_passwords_for_the_pages_too():
    from apps.guests.actions.create.validation import parse_ssh_keys, tag_problems

    assert tag_problems(["a"] * 33) == ["at most 32 tags, got 33"]
    assert "longer than 64" in tag_problems(["x" * 65])[0]
    assert tag_problems(["web", "prod"]) == []
    assert parse_ssh_keys("k" * 17_000) == ([], ["at most 16 KiB of keys"])


def test_every_request_field_has_a_bound_in_the_schema():
    """Strings have maxLength (or are enums/dates), lists maxItems: the schema says what is refused."""
    import apps.core.api  # noqa: F401  (before DRF's generics: they import our pagination from it)
    from drf_spectacular.generators import SchemaGenerator
    from drf_spectacular.renderers import OpenApiJsonRenderer

    schema = json.loads(OpenApiJsonRenderer().render(SchemaGenerator().get_schema(request=None, public=True)))
    components = schema["components"]["schemas"]
    unbounded = []

    def walk(node, where):
        node = components[node["$ref"].split("/")[-1]] if "$ref" in node else node
        for sub in node.get("allOf", []) + node.get("anyOf", []) + node.get("oneOf", []):
            walk(sub, where)
        if node.get("readOnly"):
            return
        kind = node.get("type")
        if kind == "string" and "maxLength" not in node and "enum" not in node \
                and node.get("format") not in ("date-time", "date", "binary", "uuid"):
            unbounded.append(where)
        if kind == "array":
            if "maxItems" not in node:
                unbounded.append(where)
            walk(node.get("items", {}), where + "[]")
        if isinstance(node.get("additionalProperties"), dict):
            walk(node["additionalProperties"], where + "{}")
        for name, sub in node.get("properties", {}).items():
            walk(sub, f"{where}.{name}")

    for path, operations in schema["paths"].items():
        for method, operation in operations.items():
            for content in operation.get("requestBody", {}).get("content", {}).values():
                walk(content["schema"], f"{method.upper()} {path}")
    # Lists of nested objects: DRF checks max_length, drf-spectacular does not print it.
    known = {".add_disks", ".add_nets", "upload/.file"}
    assert sorted({u for u in unbounded if not u.endswith(tuple(known))}) == []
