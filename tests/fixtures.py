"""Fixtures and helpers shared across app tests: a pinned pvesim client, a Cluster row on pvesim synced once, waits."""

from __future__ import annotations

import time

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from apps.operations.clients import set_client_factory
from apps.proxmox import connect


def pve_client(pvesim):
    return connect(url=pvesim.url, token_id=pvesim.token_id, token_secret=pvesim.token_secret,
                   fingerprint=pvesim.fingerprint)


@pytest.fixture
def pve(pvesim):
    """A fresh demo scenario and a pinned client to act on it behind the control plane's back."""
    pvesim.reset()
    client = pve_client(pvesim)
    yield client
    client.close()


@pytest.fixture
def sim_cluster(pve, pvesim, settings):
    """A Cluster row for pvesim, the operations client factory pointing at it, one sync done."""
    from apps.nodes.models import Cluster
    from apps.nodes.services import cluster_client
    from apps.nodes.sync import run_cycle

    settings.OPERATIONS_POLL_INTERVAL = 0.1
    cluster = Cluster.objects.create(name="sim", api_url=pvesim.url, token_id=pvesim.token_id,
                                     token_secret=pvesim.token_secret, tls_mode="pin",
                                     fingerprint=pvesim.fingerprint)
    previous = set_client_factory(lambda cluster_id: cluster_client(Cluster.objects.get(pk=cluster_id)))
    result = run_cycle(cluster.pk)
    assert result is not None and result.ok, result
    yield cluster
    set_client_factory(previous)


def sync(cluster):
    from apps.nodes.sync import run_cycle

    result = run_cycle(cluster.pk)
    assert result is not None and result.ok, result
    return result


def writes_during(fn) -> list[str]:
    """SQL statements that write (INSERT/UPDATE/DELETE) while fn() runs."""
    with CaptureQueriesContext(connection) as ctx:
        fn()
    return [q["sql"] for q in ctx.captured_queries
            if q["sql"].lstrip().upper().startswith(("INSERT", "UPDATE", "DELETE"))]


def wait_for(predicate, timeout: float = 60.0, interval: float = 0.05):
    """Poll until predicate() is truthy; returns its value (a bound, not a timing assertion)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"condition not met within {timeout}s")


def wait_task(client, upid: str) -> dict:
    from apps.proxmox import parse_upid

    node = parse_upid(upid).node
    return wait_for(lambda: (s := client.task_status(node, upid)).get("status") == "stopped" and s, timeout=60)


def gpu_inventory(cluster):
    """The cluster's GPU inventory read now. The sync queues a refresh on the session's worker; when
    that one holds the cluster's lock, this read is skipped, so wait for it and read again."""
    from apps.gpus.services import gpu_inventory_refresh

    return wait_for(lambda: (result := gpu_inventory_refresh(cluster=cluster)) and not result.skipped and result,
                    timeout=30, interval=0.2)
