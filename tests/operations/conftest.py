"""Fixtures for operations tests: a pinned client on pvesim, the client factory, users, helpers."""

from __future__ import annotations

import json
import time

import pytest
from asgiref.sync import async_to_sync
from channels.testing import WebsocketCommunicator

from apps.operations.clients import set_client_factory
from apps.permissions.models import ApiToken
from tests.fixtures import pve, pve_client  # noqa: F401  (shared fixtures)


@pytest.fixture
def cluster_clients(pvesim, settings):
    """Operations reach pvesim for any cluster id (apps.nodes registers the real factory)."""
    settings.OPERATIONS_POLL_INTERVAL = 0.1
    previous = set_client_factory(lambda cluster_id: pve_client(pvesim))
    yield
    set_client_factory(previous)


@pytest.fixture
def member(user):
    """A plain (non-operator) user: tests/conftest.py's `user`, named for what it is here."""
    return user


def token_for(user) -> str:
    return ApiToken.objects.create(user, name="test client")[1]


def wait_for(predicate, timeout: float = 60.0, interval: float = 0.05):
    """Poll until predicate() is truthy; returns its value (no timing assertion, just a bound)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"condition not met within {timeout}s")


def wait_task_stopped(pve, upid: str) -> dict:
    node = upid.split(":")[1]
    return wait_for(lambda: (s := pve.task_status(node, upid))["status"] == "stopped" and s)


def ws_session(path: str, *, user=None, max_messages: int = 10_000, timeout: float = 60.0):
    """Connect to the real ASGI app (real Redis channel layer), collect text frames until the
    server closes. Returns (accepted, close_code_or_None, [frames])."""
    from datacenter.asgi import application

    headers = [(b"authorization", f"Token {token_for(user)}".encode())] if user else []

    async def run():
        communicator = WebsocketCommunicator(application, path, headers=headers)
        try:
            connected, code = await communicator.connect(timeout=timeout)
            if not connected:
                return False, code, []
            frames = []
            while len(frames) < max_messages:
                output = await communicator.receive_output(timeout=timeout)
                if output["type"] == "websocket.close":
                    return True, output.get("code"), frames
                frames.append(output.get("text"))
            return True, None, frames
        finally:
            # Always answer with websocket.disconnect so the consumer leaves its channel-layer
            # receive loop itself; a consumer cancelled by asyncio.run's cleanup instead can be
            # left polling Redis and hang the test.
            await communicator.disconnect(timeout=5)

    return async_to_sync(run)()


def json_frames(frames):
    return [json.loads(frame) for frame in frames]


@pytest.fixture(autouse=True)
def fresh_channel_layer():
    """Each test's in-process websockets get their own channel-layer instance: a consumer left
    behind by an earlier event loop keeps channels_redis's per-instance receive bookkeeping busy
    ('Two event loops are trying to receive() on one channel layer at once!')."""
    from channels.layers import channel_layers

    channel_layers.backends.pop("default", None)
    yield
