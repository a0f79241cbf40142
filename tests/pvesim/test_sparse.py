"""Sparse mode: answers hold only what the official PVE schema promises; PVE 9 endpoints answer 501."""

import subprocess
import sys

import pytest
from proxmoxer.core import ResourceException

from pvesim.sparse import Sparse, SchemaUnavailable, load

from .conftest import error


@pytest.fixture
def sparse_sim(sim):
    """The session's simulator switched to sparse mode at run time, and back afterwards."""
    sim.reset()
    assert sim.admin("POST", "/sparse", on=1) == {"sparse": True}
    yield sim
    sim.admin("POST", "/sparse", on=0)


def test_started_sparse_drops_optional_fields_and_keeps_required_ones(pvesim_sparse):
    pve = pvesim_sparse.api()
    pvesim_sparse.reset()
    assert pvesim_sparse.admin("GET", "/sparse") == {"sparse": True}
    precheck = pve.nodes("pve1").qemu(100).migrate.get()
    assert precheck["running"] == 1 and precheck["local_disks"] == []  # required
    assert "allowed_nodes" not in precheck and "not_allowed_nodes" not in precheck  # optional
    resources = pve.cluster.resources.get(type="vm")
    assert resources and all(set(r) == {"id", "type"} for r in resources)


def test_nested_optional_fields_go_too():
    schema = [{"path": "/x", "info": {"GET": {"returns": {"type": "array", "items": {"type": "object", "properties": {
        "id": {"type": "string"},
        "inner": {"type": "object", "properties": {"keep": {"type": "integer"}, "drop": {"type": "integer", "optional": 1}}},
        "net[n]": {"type": "string", "optional": 1},
        "maybe": {"type": "string", "optional": 1}}}}}}}]
    data = [{"id": "a", "inner": {"keep": 1, "drop": 2}, "net0": "x", "maybe": "y", "undeclared": 3}]
    assert Sparse(schema).prune("GET", "/x", data) == [{"id": "a", "inner": {"keep": 1}}]


def test_configuration_reads_stay_whole(sparse_sim):
    config = sparse_sim.api().nodes("pve1").qemu(100).config.get()
    assert config["scsi0"].startswith("ceph-rbd:vm-100-disk-0") and config["name"] == "web-01" and "digest" in config


def test_container_precheck_is_not_implemented_in_sparse_mode(sparse_sim):
    pve = sparse_sim.api()
    sparse_sim.admin("DELETE", "/counters")
    err = error(lambda: pve.nodes("pve1").lxc(200).migrate.get(), 501)
    assert "Method 'GET /api2/json/nodes/pve1/lxc/200/migrate' not implemented" in str(err)
    counted = {(r["method"], r["path"]): r for r in sparse_sim.counters()["requests"]}
    assert counted[("GET", "/nodes/{node}/lxc/{vmid}/migrate")]["implemented"] is False
    sparse_sim.admin("POST", "/sparse", on=0)
    assert pve.nodes("pve1").lxc(200).migrate.get()["running"] == 1


def test_switching_at_run_time_survives_reset(sim):
    pve = sim.api()
    sim.reset()
    assert "allowed_nodes" in pve.nodes("pve1").qemu(100).migrate.get()
    try:
        sim.admin("POST", "/sparse", on=1)
        sim.reset()
        assert sim.admin("GET", "/state")["sparse"] is True
        assert "allowed_nodes" not in pve.nodes("pve1").qemu(100).migrate.get()
    finally:
        sim.admin("POST", "/sparse", on=0)
    assert "allowed_nodes" in pve.nodes("pve1").qemu(100).migrate.get()


def test_errors_are_untouched_in_sparse_mode(sparse_sim):
    err = error(lambda: sparse_sim.api().nodes("pve1").qemu(100).migrate.post(), 400)
    assert err.errors == {"target": "property is missing and it is not optional"}


def test_a_missing_schema_is_a_clear_error(tmp_path):
    missing = tmp_path / "nope.json"
    with pytest.raises(SchemaUnavailable, match="not found at .*nope.json"):
        load(missing)
    run = subprocess.run([sys.executable, "-m", "pvesim", "--sparse", "--schema", str(missing), "--port", "0"],
                         capture_output=True, text=True, timeout=60)
    assert run.returncode == 2
    assert f"not found at {missing}" in run.stderr and "PVESIM_SCHEMA" in run.stderr


def test_sparse_mode_needs_the_schema_at_run_time_too(tmp_path):
    from pvesim.testing import PvesimProcess

    with PvesimProcess(schema=tmp_path / "nope.json") as sim:
        with pytest.raises(RuntimeError, match="500.*not found at"):
            sim.admin("POST", "/sparse", on=1)
        assert sim.admin("GET", "/sparse") == {"sparse": False}


def test_unimplemented_calls_are_counted(sim, pve):
    sim.admin("DELETE", "/counters")
    pve.version.get()
    error(lambda: pve.nodes("pve1").nonsense.get(), 501)
    with pytest.raises(ResourceException):
        pve.nodes("pve1").nonsense.post()
    counters = sim.counters()
    assert counters["total"] == 3 and counters["unrouted"] == 2
    rows = {(r["method"], r["path"]): (r["count"], r["implemented"]) for r in counters["requests"]}
    assert rows == {("GET", "/version"): (1, True), ("GET", "/nodes/pve1/nonsense"): (1, False),
                    ("POST", "/nodes/pve1/nonsense"): (1, False)}
    sim.admin("DELETE", "/counters")
    assert sim.counters() == {"total": 0, "unrouted": 0, "requests": []}


def test_calls_outside_the_api_are_counted(sim):
    import requests

    sim.admin("DELETE", "/counters")
    r = requests.get(f"{sim.url}/index.html", verify=False, timeout=10)
    assert r.status_code == 501
    assert sim.counters()["requests"] == [{"method": "GET", "path": "/index.html", "count": 1, "implemented": False}]


def test_password_login_still_works(sparse_sim):
    from proxmoxer import ProxmoxAPI

    root = ProxmoxAPI(sparse_sim.host, port=sparse_sim.info["port"], user="root@pam",
                      password=sparse_sim.root_password, verify_ssl=False)
    assert root.version.get()["release"] == "9.1"
