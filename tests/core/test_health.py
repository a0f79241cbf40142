import pytest
from celery import Celery

from apps.core import health

pytestmark = pytest.mark.django_db


def test_healthz_ok_with_database_redis_and_a_worker(client, celery_worker):
    response = client.get("/healthz")  # an operator sees the details
    body = response.json()
    assert response.status_code == 200, body
    assert body["status"] == "ok"
    assert {name: check["ok"] for name, check in body["checks"].items()} == {
        "database": True, "redis": True, "celery": True}
    assert body["checks"]["celery"]["workers"]
    assert "no-cache" in response["Cache-Control"]


def test_healthz_status_is_public_its_details_are_not(anon_client, user_client, settings, unused_port):
    settings.REDIS_URL = f"redis://127.0.0.1:{unused_port}/0"
    settings.METRICS_TOKEN = "monitor-me"
    for who in (anon_client, user_client):
        response = who.get("/healthz")
        assert response.status_code == 503
        body = response.json()
        assert body["status"] == "fail" and body["checks"]["redis"] == {"ok": False}
        assert all(set(check) == {"ok"} for check in body["checks"].values())  # no errors, no worker names
    with_token = anon_client.get("/healthz", headers={"Authorization": "Bearer monitor-me"}).json()
    assert "Connection" in with_token["checks"]["redis"]["error"]


def test_healthz_503_names_what_failed(client, settings, unused_port):
    settings.REDIS_URL = f"redis://127.0.0.1:{unused_port}/0"
    response = client.get("/healthz")
    body = response.json()
    assert response.status_code == 503
    assert body["status"] == "fail"
    assert body["checks"]["database"]["ok"] is True
    assert body["checks"]["redis"]["ok"] is False
    assert "Connection" in body["checks"]["redis"]["error"]


def test_celery_check_fails_without_a_worker(settings):
    # A control exchange no worker listens on: nobody answers the ping.
    # set_as_current=False: a throwaway app must not become the one shared_task binds to
    app = Celery("lonely", broker=settings.CELERY_BROKER_URL, set_as_current=False)
    app.conf.control_exchange = "nobody-listens-here"
    with pytest.raises(RuntimeError, match="no worker answered"):
        health.check_celery(app, timeout=0.5)


def test_celery_check_fails_when_broker_is_down(unused_port):
    app = Celery("down", broker=f"redis://127.0.0.1:{unused_port}/0", set_as_current=False)
    with pytest.raises(Exception):
        health.check_celery(app, timeout=0.5)


@pytest.fixture
def unused_port():
    from tests.conftest import free_port

    return free_port()
