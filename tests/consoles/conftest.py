"""Console fixtures: tenants on pvesim's demo pools, logged-in websocket connections to the real
ASGI server (real Redis channel layer), exact reads over websocket messages."""

from __future__ import annotations

import pytest
from django.test import Client
from websockets.sync.client import connect

from pvesim.rfb import Stream
from tests.fixtures import pve, sim_cluster, sync  # noqa: F401  (shared fixtures)

PASSWORD = "console-pass-1234"


@pytest.fixture
def tenants(sim_cluster, django_user_model):  # noqa: F811
    """acme and globex on the demo pools (guests tagged by a real sync), a member each."""
    from apps.permissions.models import Membership, Tenant, TenantPool

    out = {}
    for slug in ("acme", "globex"):
        tenant = Tenant.objects.create(name=slug.title(), slug=slug)
        TenantPool.objects.create(tenant=tenant, cluster=sim_cluster, pool=slug)
        user = django_user_model.objects.create_user(username=f"{slug}-member", password=PASSWORD)
        Membership.objects.create(user=user, tenant=tenant, role="member")
        out[slug], out[f"{slug}-member"] = tenant, user
    sync(sim_cluster)
    return out


def guest(cluster, vmid):
    from apps.guests.models import Guest

    return Guest.objects.get(cluster=cluster, vmid=vmid)


def open_console(asgi_server, user, path: str):
    """A websocket to `path` logged in as `user` (session cookie), asking for the binary subprotocol."""
    client = Client()
    client.force_login(user)
    cookie = f"sessionid={client.cookies['sessionid'].value}"
    return connect(f"{asgi_server.ws_url}{path}", additional_headers={"Cookie": cookie},
                   subprotocols=["binary"], open_timeout=15, max_size=2 ** 22)


def close_code(ws, timeout: float = 15) -> int:
    """Wait for the server to close `ws`; its close code."""
    from websockets.exceptions import ConnectionClosed

    try:
        while True:
            ws.recv(timeout=timeout)
    except ConnectionClosed:
        pass
    return ws.close_code


__all__ = ["Stream", "close_code", "guest", "open_console"]


@pytest.fixture(autouse=True)
def sessions_ended(request):
    """After each test, wait until the relay has closed every session it opened: its last write
    must not race the transactional test's flush (TRUNCATE) of the tables it writes."""
    yield
    marker = request.node.get_closest_marker("django_db")
    if marker is None or not marker.kwargs.get("transaction"):
        return  # only a relay in another thread writes beside a transactional test
    from apps.consoles.models import ConsoleSession
    from tests.fixtures import wait_for

    wait_for(lambda: not ConsoleSession.objects.filter(ended_at__isnull=True).exists(), timeout=30)
