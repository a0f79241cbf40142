"""The simulator's transport: envelopes, validation, auth, quorum, fault injection."""

import pytest
from proxmoxer import ProxmoxAPI
from proxmoxer.core import ResourceException


def test_version_and_envelope(pve):
    assert pve.version.get()["release"] == "9.1"


def test_unknown_path_is_501(pve):
    with pytest.raises(ResourceException) as exc:
        pve.nodes("pve1").nonexistent.get()
    assert exc.value.status_code == 501
    assert "Method 'GET /api2/json/nodes/pve1/nonexistent' not implemented" in exc.value.content


def test_validation_errors_name_the_parameter(pve):
    with pytest.raises(ResourceException) as exc:
        pve.cluster.resources.get(type="guests")
    assert exc.value.status_code == 400
    assert exc.value.content == "Parameter verification failed."
    assert exc.value.errors == {"type": "value 'guests' does not have a value in the enumeration 'vm, storage, node, sdn'"}
    with pytest.raises(ResourceException) as exc:
        pve.cluster.resources.get(bogus=1)
    assert exc.value.errors == {"bogus": "property is not defined in schema and the schema does not allow additional properties"}


def test_booleans_only_as_0_1(pve):
    with pytest.raises(ResourceException) as exc:
        pve.nodes("pve1").tasks.get(errors="true")
    assert exc.value.errors == {"errors": "type check ('boolean') failed - got 'true'"}


def test_nextid_is_a_string_and_checks_a_given_id(pve):
    assert pve.cluster.nextid.get() == "105"
    with pytest.raises(ResourceException) as exc:
        pve.cluster.nextid.get(vmid=100)
    assert exc.value.errors == {"vmid": "VM 100 already exists"}


def test_ticket_login_and_csrf(sim, pve):
    api = ProxmoxAPI(sim.host, port=sim.info["port"], user="root@pam", password=sim.root_password, verify_ssl=False)
    assert {n["node"] for n in api.nodes.get()} == {"pve1", "pve2", "pve3"}
    api.cluster.options.put(description="hello")  # proxmoxer sends the CSRF header
    assert pve.cluster.options.get()["description"] == "hello"


def test_wrong_password_is_401(sim, pve):
    from proxmoxer.core import AuthenticationError
    with pytest.raises(AuthenticationError):
        ProxmoxAPI(sim.host, port=sim.info["port"], user="root@pam", password="wrong", verify_ssl=False)


def test_bad_token_is_401(sim, pve):
    api = ProxmoxAPI(sim.host, port=sim.info["port"], user="root@pam", token_name="pvesim",
                     token_value="00000000-0000-0000-0000-000000000000", verify_ssl=False)
    with pytest.raises(ResourceException) as exc:
        api.version.get()
    assert exc.value.status_code == 401


def test_quorum_loss_blocks_writes_not_reads(sim, pve):
    sim.admin("POST", "/nodes/pve2/power", state="off")
    pve.cluster.options.put(description="2 of 3 votes is quorate")
    sim.admin("POST", "/nodes/pve3/partition", partitioned=1)
    with pytest.raises(ResourceException) as exc:
        pve.cluster.options.put(description="no quorum")
    assert exc.value.status_code == 500
    assert exc.value.content == "cluster not ready - no quorum?"
    status = pve.cluster.status.get()
    assert status[0]["quorate"] == 0
    assert pve.cluster.resources.get(type="node")  # reads keep working


def test_offline_node_is_595(sim, pve):
    sim.admin("POST", "/nodes/pve3/power", state="off")
    with pytest.raises(ResourceException) as exc:
        pve.nodes("pve3").status.get()
    assert exc.value.status_code == 595
    nodes = {n["node"]: n["status"] for n in pve.cluster.resources.get(type="node")}
    assert nodes == {"pve1": "online", "pve2": "online", "pve3": "offline"}


def test_counters_count_requests_per_route(sim, pve):
    sim.admin("DELETE", "/counters")
    for _ in range(3):
        pve.cluster.resources.get()
    counts = {(r["method"], r["path"]): r["count"] for r in sim.counters()["requests"]}
    assert counts[("GET", "/cluster/resources")] == 3


def test_latency_injection_is_applied(sim, pve):
    import time
    sim.admin("POST", "/faults/latency", seconds=0.3, path="/version")
    start = time.monotonic()
    pve.version.get()
    slow = time.monotonic() - start
    sim.admin("POST", "/faults/clear")
    assert slow >= 0.3
