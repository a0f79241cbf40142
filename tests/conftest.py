"""Shared fixtures. Real parts only: pvesim over HTTPS, PostgreSQL, Redis, a real Celery worker.

    pvesim          session: a pvesim subprocess (time scale 20) -> .url .fingerprint .token_id
                    .token_secret .root_password .admin(method, path, **json) .reset()
    pvesim_sparse   session: a second pvesim started with --sparse (answers hold only what the official
                    PVE schema marks required; endpoints newer than PVE 8.4 answer 501)
    celery_worker   session: a Celery worker thread on the real Redis broker (this run's own queue)
    operator        a staff user (platform admin); `user`: a plain user
    client          Django test client logged in as `operator`; `anon_client`, `user_client`
    api             DRF APIClient helper logged in as `operator`: api.get(url, expect=200) -> JSON
                    (also .post/.put/.patch/.delete); `api_for(user)` builds one for another user
    asgi_server     session: uvicorn serving datacenter.asgi (HTTP + websockets) on a free port,
                    in a thread of this process (so it uses the test database) -> .url .port
    live_server     the same ASGI server (replaces pytest-django's WSGI one)
    browser, page   Playwright + Debian chromium (per test); `operator_page` is logged in as `operator`

Flow tests that cross threads (worker, ASGI server) need `@pytest.mark.django_db(transaction=True)`.

Running against a sparse Proxmox too: mark a module (`pytestmark = pytest.mark.sparse`) or a test
(`@pytest.mark.sparse`) and every marked test that uses `pvesim` (directly or through `pve`,
`sim_cluster`, `cluster`...) runs twice, as `test_x[full]` and `test_x[sparse]`; in the second run
`pvesim` and everything built on it is the `pvesim_sparse` process. `make test` runs both;
`pytest -k sparse` runs only the sparse variants; `--sparse-all` treats every test as marked.
"""

from __future__ import annotations

import contextlib
import os
import socket
import threading
import time
from types import SimpleNamespace

import pytest

OPERATOR_PASSWORD = "operator-pass-1234"
USER_PASSWORD = "user-pass-1234"


def pytest_sessionstart(session):
    # A var/services.env from an earlier `make services` may point at servers stopped since.
    from django.conf import settings

    if settings.SERVICES_FROM_FILE:
        from datacenter import localservices

        localservices.start()


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# --- Proxmox simulator ------------------------------------------------------------------------


_sims: dict = {}  # "full" / "sparse" -> this session's running PvesimProcess


def running_pvesim(mode: str = "full"):
    """The session's pvesim in `mode` ("full" or "sparse"), started on first use, stopped at session end."""
    if mode not in _sims:
        from pvesim.testing import PvesimProcess

        _sims[mode] = PvesimProcess(scenario=None, time_scale=20.0, sparse=mode == "sparse").start()
    return _sims[mode]


class _SimRef:
    """The `pvesim` value of a test the `sparse` marker parametrizes: the session's pvesim of one mode."""

    def __init__(self, mode: str):
        self.mode = mode

    def __getattr__(self, name):
        return getattr(running_pvesim(self.mode), name)

    def __repr__(self):
        return f"<pvesim {self.mode}>"


@pytest.fixture(scope="session")
def pvesim():
    return running_pvesim("full")


@pytest.fixture(scope="session")
def pvesim_sparse():
    return running_pvesim("sparse")


def pytest_configure(config):
    config.addinivalue_line("markers", "sparse: run the test against the full and against a sparse pvesim")


def pytest_addoption(parser):
    parser.addoption("--sparse-all", action="store_true",
                     help="run every test that uses pvesim against a sparse pvesim too, marked or not")


def pytest_generate_tests(metafunc):
    marked = metafunc.definition.get_closest_marker("sparse") or metafunc.config.getoption("--sparse-all")
    # Direct parametrization overrides the session fixture for this test and every fixture using it.
    if marked and "pvesim" in metafunc.fixturenames:
        metafunc.parametrize("pvesim", [_SimRef("full"), _SimRef("sparse")], ids=["full", "sparse"])


def pytest_sessionfinish(session):
    while _sims:
        _sims.popitem()[1].stop()


# --- Celery -----------------------------------------------------------------------------------


_worker_app = None  # the Celery app while the session's worker runs


def drain_celery_worker(timeout: float = 20.0) -> None:
    """Drop the tasks a finished test left queued and wait for the ones still running.

    The worker outlives each test; a task of the last test still writing while the database is
    flushed deadlocks the flush and leaks rows into the next test."""
    if _worker_app is None:
        return
    from celery.worker import state

    _worker_app.control.purge()
    deadline = time.monotonic() + timeout
    while (state.active_requests or state.reserved_requests) and time.monotonic() < deadline:
        time.sleep(0.05)


def _install_flush_guard() -> None:
    from django.test import TransactionTestCase

    original = TransactionTestCase._fixture_teardown

    def _fixture_teardown(self):
        drain_celery_worker()
        for attempt in range(3):
            try:
                return original(self)
            except Exception as exc:  # a deadlock with a worker transaction that slipped through
                if attempt == 2 or "deadlock" not in repr(exc.__cause__ or exc).lower():
                    raise
                time.sleep(0.5)
                drain_celery_worker()

    TransactionTestCase._fixture_teardown = _fixture_teardown


@pytest.fixture(scope="session")
def celery_worker(django_db_setup, django_db_blocker):
    import celery.contrib.testing.tasks  # noqa: F401  (registers celery.ping for the ready check)
    from celery.contrib.testing.worker import start_worker

    from datacenter.celery import app

    stack = contextlib.ExitStack()
    with django_db_blocker.unblock():  # worker start runs Django's checks
        worker = stack.enter_context(
            start_worker(app, pool="threads", concurrency=4, perform_ping_check=True,
                         ping_task_timeout=30, shutdown_timeout=30, loglevel="WARNING")
        )
    global _worker_app
    _worker_app = app
    _install_flush_guard()
    try:
        yield worker
    finally:
        _worker_app = None
        stack.close()


# --- Channel layer ----------------------------------------------------------------------------


@pytest.fixture(autouse=True)
def own_channel_layer():
    """Each test gets channel layer instances of its own. channels_redis lets one event loop at a time
    receive on an instance; a websocket an earlier browser test left open in the session's ASGI
    server keeps receiving on the shared one in that server's loop, and a test driving a consumer in
    its own loop (WebsocketCommunicator) then fails with "Two event loops are trying to receive()"."""
    from channels.layers import channel_layers

    saved = dict(channel_layers.backends)
    channel_layers.backends.clear()
    try:
        yield
    finally:
        channel_layers.backends.clear()
        channel_layers.backends.update(saved)


# --- Users and clients ------------------------------------------------------------------------


@pytest.fixture
def operator(django_user_model):
    return django_user_model.objects.create_user(
        username="operator", password=OPERATOR_PASSWORD, email="operator@example.com", is_staff=True
    )


@pytest.fixture
def user(django_user_model):
    return django_user_model.objects.create_user(username="member", password=USER_PASSWORD)


@pytest.fixture
def anon_client():
    from django.test import Client

    return Client()


@pytest.fixture
def client(operator):
    from django.test import Client

    client = Client()
    client.force_login(operator)
    return client


@pytest.fixture
def user_client(user):
    from django.test import Client

    client = Client()
    client.force_login(user)
    return client


class Api:
    """DRF APIClient with an expected status per call. Returns the JSON body (None when empty);
    the full response is in `.last`."""

    def __init__(self, user=None):
        from rest_framework.test import APIClient

        self.client = APIClient()
        if user is not None:
            self.client.force_authenticate(user=user)
        self.last = None

    def request(self, method: str, url: str, data=None, *, expect: int = 200, **extra):
        response = getattr(self.client, method)(url, data, format="json", **extra)
        self.last = response
        body = response.content.decode(errors="replace")[:2000]
        assert response.status_code == expect, (
            f"{method.upper()} {url} -> {response.status_code}, expected {expect}: {body}"
        )
        if not response.content:
            return None
        if "json" in response.get("Content-Type", ""):
            return response.json()
        return response

    def get(self, url, data=None, *, expect=200, **extra):
        return self.request("get", url, data, expect=expect, **extra)

    def post(self, url, data=None, *, expect=200, **extra):
        return self.request("post", url, data, expect=expect, **extra)

    def put(self, url, data=None, *, expect=200, **extra):
        return self.request("put", url, data, expect=expect, **extra)

    def patch(self, url, data=None, *, expect=200, **extra):
        return self.request("patch", url, data, expect=expect, **extra)

    def delete(self, url, data=None, *, expect=204, **extra):
        return self.request("delete", url, data, expect=expect, **extra)


@pytest.fixture
def api(operator):
    return Api(operator)


@pytest.fixture
def api_for(db):
    return Api


# --- ASGI server and browser ------------------------------------------------------------------


@pytest.fixture(scope="session")
def asgi_server():
    import uvicorn

    from datacenter.asgi import application

    port = free_port()
    config = uvicorn.Config(application, host="127.0.0.1", port=port, log_level="warning",
                            lifespan="off", ws="websockets-sansio", ws_per_message_deflate=False)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name="asgi-server", daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError(f"uvicorn did not start on port {port}")
        time.sleep(0.05)
    from django.test.utils import modify_settings

    yield SimpleNamespace(
        url=f"http://127.0.0.1:{port}", host="127.0.0.1", port=port, ws_url=f"ws://127.0.0.1:{port}",
        # pytest-django's autouse live-server helper toggles this around each test
        _live_server_modified_settings=modify_settings(ALLOWED_HOSTS={"append": "127.0.0.1"}),
    )
    server.should_exit = True
    thread.join(timeout=10)


@pytest.fixture
def live_server(asgi_server, transactional_db):
    return asgi_server


@pytest.fixture
def browser(monkeypatch):
    """Function-scoped on purpose: Playwright's sync API keeps an event loop running in this
    thread while it is open, which breaks async_to_sync in every later test."""
    from playwright.sync_api import sync_playwright

    # The ORM calls tests make beside Playwright's loop are still synchronous.
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=os.environ.get("CHROMIUM", "/usr/bin/chromium"),
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking"],
        )
        yield browser
        browser.close()
        # With Playwright's loop running, Django's connection store is context-local: connections
        # opened during the test are not the ones pytest-django closes, so close them here.
        from django.db import connections

        connections.close_all()


@pytest.fixture
def page(browser):
    context = browser.new_context()
    page = context.new_page()
    page.set_default_timeout(15_000)
    yield page
    context.close()


@pytest.fixture
def operator_page(page, live_server, operator):
    page.goto(f"{live_server.url}/login/")
    page.fill("input[name=username]", operator.username)
    page.fill("input[name=password]", OPERATOR_PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(f"{live_server.url}/")
    return page
