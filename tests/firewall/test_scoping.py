"""The scoping walk of tests/permissions/test_scoping.py, over the firewall's own routes: tenant B
gets 404 for tenant A's guest, cluster and node firewall; an auditor and a read-only token get 403
for every write. (The full walk covers every app; this one keeps the firewall's routes checked on
their own.)"""

from __future__ import annotations

import pytest

from tests.permissions.test_scoping import (
    ALL_METHODS,
    WRITE_METHODS,
    _client,
    _params,
    _send,
    routes,
    url_for,
)

pytestmark = pytest.mark.django_db


@pytest.fixture
def world(tenants):
    """Tenant A (acme) owns guest 100 and a cluster (with a node) no other tenant uses; a read-only
    token of an acme member."""
    from apps.nodes.models import Cluster, Node
    from apps.permissions.models import ApiToken, TenantPool

    acme = tenants["acme"]
    other = Cluster.objects.create(name="acme-only", api_url="https://192.0.2.10:8006", token_id="root@pam!t",
                                   token_secret="s", tls_mode="insecure")
    TenantPool.objects.create(tenant=acme, cluster=other, pool="acme")
    node = Node.objects.create(cluster=other, name="acme-node")
    token, _ = ApiToken.objects.create(tenants["users"]["acme"], expiry=None, name="ro", tenant=acme, read_only=True)
    return {"users": {"globex-member": tenants["users"]["globex"], "auditor": tenants["users"]["auditor"],
                      "acme-member": tenants["users"]["acme"]}, "token": token,
            "objects": {"guest": tenants["guests"][100].pk, "cluster": other.pk, "node": node.pk,
                        "snapshot_name": "acme-name"}}


def _firewall_routes() -> list[str]:
    found = [r for r in routes() if "firewall" in r]
    assert len(found) > 30 and "api/v1/guests/{pk}/firewall/rules/" in found and "guests/{pk}/firewall/" in found
    return found


def test_tenant_b_gets_404_for_tenant_a_and_the_datacenter(world):
    client = _client(world["users"]["globex-member"])
    failures = []
    for route in _firewall_routes():
        url = url_for(route, world["objects"])
        if not _params(route):
            if client.get(url).status_code != 200:
                failures.append(f"GET {url}")
            continue
        statuses = {m: _send(client, m, url).status_code for m in ALL_METHODS}
        if any(s not in (404, 405) for s in statuses.values()) or 404 not in statuses.values():
            failures.append(f"{url} -> {statuses}")
    assert not failures, "\n".join(failures)


def test_readers_change_nothing(world):
    from rest_framework.test import APIClient

    token_client = APIClient()
    token_client.force_authenticate(user=world["users"]["acme-member"], token=world["token"])
    failures = []
    for who, client in (("auditor", _client(world["users"]["auditor"])), ("read-only token", token_client)):
        for route in _firewall_routes():
            if who == "read-only token" and not route.startswith("api/v1/"):
                continue
            url = url_for(route, world["objects"])
            for method in WRITE_METHODS:
                status = _send(client, method, url).status_code
                if status not in (403, 405):
                    failures.append(f"{who}: {method.upper()} {url} -> {status}")
    assert not failures, "\n".join(failures)
