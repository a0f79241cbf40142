"""Fixtures for clusters and nodes: a cluster registered against pvesim, helpers to wait."""

from __future__ import annotations

import time

import pytest


@pytest.fixture
def sim(pvesim):
    """The session's pvesim, reset to the 3-node demo before and after the test."""
    pvesim.reset()
    yield pvesim
    pvesim.reset()


def cluster_values(sim, **overrides) -> dict:
    values = dict(api_url=sim.url, token_id=sim.token_id, token_secret=sim.token_secret, tls_mode="pin",
                  fingerprint=sim.fingerprint)
    values.update(overrides)
    return values


@pytest.fixture
def cluster(sim, operator):
    from apps.nodes.services import cluster_create

    return cluster_create(user=operator, name="demo", **cluster_values(sim))


def wait_for(predicate, timeout: float = 30.0, interval: float = 0.2, message: str = "condition"):
    """Poll until predicate() is truthy; returns its value (flows across processes take a moment)."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {message}")
        time.sleep(interval)


def unused_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
