"""Fixtures for pvesim's own tests: one simulator per session, reset before each test."""

import time
import warnings

import pytest
import urllib3
from proxmoxer.core import ResourceException

from pvesim.testing import PvesimProcess

warnings.simplefilter("ignore", urllib3.exceptions.InsecureRequestWarning)


@pytest.fixture(scope="session")
def sim():
    with PvesimProcess(time_scale=50.0) as process:
        yield process


@pytest.fixture
def pve(sim):
    """A proxmoxer client with the full-privilege API token, on a freshly reset cluster."""
    sim.reset()
    return sim.api()


def wait_task(pve, upid: str, timeout: float = 30.0) -> dict:
    """Poll a task until it stops; returns its final status."""
    node = upid.split(":")[1]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status = pve.nodes(node).tasks(upid).status.get()
        if status["status"] == "stopped":
            return status
        time.sleep(0.05)
    raise AssertionError(f"task {upid} still running after {timeout}s")


def task_log(pve, upid: str) -> list[str]:
    node = upid.split(":")[1]
    return [line["t"] for line in pve.nodes(node).tasks(upid).log.get(limit=0)]


def ok(pve, upid):
    status = wait_task(pve, upid)
    assert status["exitstatus"] == "OK", (status, task_log(pve, upid))
    return status


def failed(pve, upid, message):
    status = wait_task(pve, upid)
    assert status["exitstatus"] == message, task_log(pve, upid)
    assert task_log(pve, upid)[-1] == f"TASK ERROR: {message}"


def error(call, status=500):
    with pytest.raises(ResourceException) as exc:
        call()
    assert exc.value.status_code == status, exc.value
    return exc.value


def eventually(check, timeout=10.0):
    """Poll until check() is truthy (e.g. the lock a just-started task takes in its worker)."""
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not reached within {timeout}s")
        time.sleep(0.01)


@pytest.fixture
def slow(sim):
    """Slow the simulated clock (x5 instead of x50) while a test looks at a task that is still running."""
    sim.admin("POST", "/time-scale", scale=5)
    yield
    sim.admin("POST", "/time-scale", scale=50)
