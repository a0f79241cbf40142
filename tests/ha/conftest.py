"""Fixtures for HA tests: the demo cluster synced once, pvesim's clock fast while a test runs."""

from __future__ import annotations

import pytest

from tests.fixtures import pve, sim_cluster, sync, wait_for  # noqa: F401  (fixtures and helpers)


@pytest.fixture
def fast_clock(pvesim):
    """pvesim's simulated time at 60x while the test runs (a failover in about 4 real seconds)."""
    pvesim.admin("POST", "/time-scale", scale=60)
    yield
    pvesim.admin("POST", "/time-scale", scale=20)


def power(pvesim, node: str, on: bool) -> None:
    pvesim.admin("POST", f"/nodes/{node}/power", state="on" if on else "off")


def sync_until(cluster, predicate, timeout: float = 30.0):
    """Run sync cycles back to back until predicate() holds (the sync is what observes failover)."""
    from apps.nodes.sync import run_cycle

    seen = []

    def step():
        result = run_cycle(cluster.pk)  # skipped while a worker's cycle holds the lock: that one syncs
        assert result is not None and (result.ok or result.skipped), result
        seen.append("skipped" if result.skipped else "ok")
        return predicate()

    try:
        return wait_for(step, timeout=timeout, interval=0.05)
    except AssertionError as exc:
        from apps.ha.models import HaResource

        states = list(HaResource.objects.filter(cluster=cluster).values_list("sid", "node", "state", "failback"))
        raise AssertionError(f"{exc}; cycles {seen.count('ok')} ok, {seen.count('skipped')} skipped; {states}") from None


@pytest.fixture
def tenants(sim_cluster, django_user_model):  # noqa: F811  (the imported fixture)
    """acme (vm:100 and ct:200 are its guests) and globex, a member each, synced so guests are theirs."""
    from apps.permissions.models import Membership, Tenant, TenantPool

    users = {}
    for slug in ("acme", "globex"):
        tenant = Tenant.objects.create(name=slug.upper(), slug=slug)
        TenantPool.objects.create(tenant=tenant, cluster=sim_cluster, pool=slug)
        users[slug] = django_user_model.objects.create_user(username=f"{slug}-member", password="tenant-pass-1234")
        Membership.objects.create(user=users[slug], tenant=tenant, role="member")
    sync(sim_cluster)
    return users


def finished(op_id):
    from apps.operations.models import Operation

    op = Operation.objects.get(pk=op_id)
    return op if not op.is_active else None
