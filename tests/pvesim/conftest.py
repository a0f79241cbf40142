"""Fixtures for pvesim's own tests: one simulator per session, reset before each test."""

import time
import warnings

import pytest
import urllib3

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
