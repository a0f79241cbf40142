import pytest
from django.core.exceptions import ValidationError
from rest_framework.test import APIClient

from apps.core.api import exception_handler
from apps.core.services import audit_log

pytestmark = pytest.mark.django_db


def test_list_is_paginated(api, operator):
    for i in range(3):
        audit_log(user=operator, action=f"x.y{i}", target=None, result="success")
    body = api.get("/api/v1/audit/?page_size=2")
    assert body["count"] == 3 and len(body["results"]) == 2 and body["next"]
    assert set(body["results"][0]) >= {"id", "created", "username", "action", "result"}


def test_anonymous_is_refused(anon_client):
    assert anon_client.get("/api/v1/audit/").status_code in (401, 403)


def test_bad_filter_is_a_field_map(api):
    body = api.get("/api/v1/audit/?result=bogus", expect=400)
    assert body["detail"] == "Invalid input."
    assert "bogus" in body["errors"]["result"][0]


def test_session_auth_enforces_csrf_token_auth_does_not(operator):
    session = APIClient(enforce_csrf_checks=True)
    session.force_login(operator)
    response = session.post("/api/v1/audit/", {}, format="json")
    assert response.status_code == 403
    assert "CSRF" in response.json()["detail"]

    tool = APIClient()
    token = tool.post("/api/v1/auth/token/", {"username": "operator", "password": "operator-pass-1234"},
                      format="json").json()["token"]
    tool.credentials(HTTP_AUTHORIZATION=f"Token {token}")
    assert tool.get("/api/v1/audit/").status_code == 200
    assert tool.post("/api/v1/audit/", {}, format="json").status_code == 405  # past auth, no CSRF needed


def test_token_endpoint_names_bad_credentials(anon_client, operator):
    response = anon_client.post("/api/v1/auth/token/", {"username": "operator", "password": "x"})
    assert response.status_code == 400
    assert response.json()["errors"]["non_field_errors"]


def test_service_validation_errors_become_field_maps():
    response = exception_handler(ValidationError({"vmid": ["vmid 100 is already in use"]}), {})
    assert response.status_code == 400
    assert response.data == {"detail": "Invalid input.", "errors": {"vmid": ["vmid 100 is already in use"]}}
    response = exception_handler(ValidationError("cluster is not quorate"), {})
    assert response.data["errors"] == {"non_field_errors": ["cluster is not quorate"]}


def test_schema_and_docs_from_local_assets(client):
    schema = client.get("/api/v1/schema/")
    assert schema.status_code == 200
    assert b"/api/v1/audit/" in schema.content
    docs = client.get("/api/v1/docs/").content.decode()
    assert "/static/drf_spectacular_sidecar/swagger-ui-dist/" in docs
    assert "cdn." not in docs


def test_schema_needs_login(anon_client):
    assert anon_client.get("/api/v1/schema/").status_code in (401, 403)


def test_metrics_prometheus_text(anon_client, settings):
    settings.METRICS_PUBLIC = True
    response = anon_client.get("/metrics")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/plain; version=0.0.4")
    assert "datacenter_up 1.0" in response.content.decode()


def test_metrics_are_closed_unless_opened(anon_client, client, settings):
    response = anon_client.get("/metrics")
    assert response.status_code == 401 and "METRICS_PUBLIC=1" in response.content.decode()
    assert response["WWW-Authenticate"].startswith("Bearer")
    assert client.get("/metrics").status_code == 200  # an operator's session
    settings.METRICS_PUBLIC = True
    assert anon_client.get("/metrics").status_code == 200


def test_metrics_token(anon_client, settings):
    settings.METRICS_TOKEN = "scrape-me"
    assert anon_client.get("/metrics").status_code == 401
    assert anon_client.get("/metrics", headers={"Authorization": "Bearer nope"}).status_code == 401
    assert anon_client.get("/metrics", headers={"Authorization": "Bearer scrape-me"}).status_code == 200


def test_metrics_line_sources(anon_client, settings):
    from apps.core import metrics

    settings.METRICS_PUBLIC = True
    def source():
        return ["# TYPE datacenter_test_gauge gauge", "datacenter_test_gauge 42"]

    metrics.register_lines(source)
    try:
        assert "datacenter_test_gauge 42" in anon_client.get("/metrics").content.decode()
    finally:
        metrics._line_sources.remove(source)
