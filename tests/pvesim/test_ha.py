"""HA through the API: resources driving guests, fencing and recovery, rules, groups, quorum."""

import json
import time
import tomllib
from pathlib import Path

import pytest
from proxmoxer.core import ResourceException

from pvesim.scenario import DEFAULT_SCENARIO
from pvesim.testing import PvesimProcess

FAST = 200  # simulated seconds per real second: fence delay 0.3 s, agent lock expiry 0.6 s


@pytest.fixture
def fast(sim, pve):
    """The HA tests wait for simulated minutes: speed the clock up, and put it back afterwards."""
    sim.admin("POST", "/time-scale", scale=FAST)
    yield pve
    sim.admin("POST", "/time-scale", scale=50)


def wait_for(check, timeout=20.0, what="condition"):
    """Poll `check()` until it returns something truthy; returns it."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(0.05)
    raise AssertionError(f"{what} not reached in {timeout}s (last: {last!r})")


def service(pve, sid):
    return next((i for i in pve.cluster.ha.status.current.get() if i.get("sid") == sid), None)


def guest(pve, vmid):
    return next(r for r in pve.cluster.resources.get(type="vm") if r["vmid"] == vmid)


def error_message(sim, method, path, **params):
    """The full error message of a call (proxmoxer only keeps its first line, the reason)."""
    import requests
    r = requests.request(method, f"{sim.url}/api2/json{path}", data=params, verify=False, timeout=10,
                         headers={"Authorization": f"PVEAPIToken={sim.token_id}={sim.token_secret}"})
    return r.status_code, r.json().get("message")


def log_lines(pve):
    return [e["msg"] for e in reversed(pve.cluster.log.get(max=500))]


def test_scenario_resources_rules_and_status(pve):
    resources = {r["sid"]: r for r in pve.cluster.ha.resources.get()}
    assert resources["vm:100"]["state"] == "started" and resources["vm:100"]["type"] == "vm"
    assert resources["vm:100"]["comment"] == "front-end web server"
    assert pve.cluster.ha.resources("100").get()["sid"] == "vm:100"  # bare VMID resolves
    rule = pve.cluster.ha.rules("web-prefers-pve1").get()
    assert rule["nodes"] == "pve1:2,pve2:1,pve3" and rule["resources"] == "vm:100"
    status = {i["id"]: i for i in pve.cluster.ha.status.current.get()}
    assert status["quorum"] == {"id": "quorum", "type": "quorum", "node": "pve1", "quorate": 1, "status": "OK"}
    assert status["master"]["status"].startswith("pve1 (active, ")
    assert status["fencing"]["armed-state"] == "armed"
    assert status["lrm:pve1"]["status"].startswith("pve1 (active, watchdog active, ")
    assert status["lrm:pve3"]["status"].startswith("pve3 (idle, watchdog standby, ")
    assert status["service:vm:100"]["status"] == "vm:100 (pve1, started)"
    assert status["service:vm:100"]["request_state"] == "started"
    assert guest(pve, 100)["hastate"] == "started"
    manager = pve.cluster.ha.status.manager_status.get()
    assert manager["manager_status"]["node_status"] == {"pve1": "online", "pve2": "online", "pve3": "online"}
    assert manager["manager_status"]["service_status"]["vm:100"]["state"] == "started"
    assert manager["lrm_status"]["pve1"]["state"] == "active"


def test_resource_requested_started_starts_and_stopped_stops(sim, pve):
    assert guest(pve, 104)["status"] == "stopped"
    pve.cluster.ha.resources.post(sid="vm:104", state="started", max_restart=2, comment="db")
    assert pve.cluster.ha.resources("vm:104").get()["max_restart"] == 2
    wait_for(lambda: guest(pve, 104)["status"] == "running", what="vm 104 running")
    assert wait_for(lambda: service(pve, "vm:104")["state"] == "started")
    start = next(t for t in pve.cluster.tasks.get() if t["type"] == "qmstart" and t["id"] == "104")
    log = [line["t"] for line in pve.nodes("pve3").tasks(start["upid"]).log.get()]
    assert log[0] == "task started by HA resource agent" and log[-1] == "TASK OK"

    pve.cluster.ha.resources("vm:104").put(state="stopped")
    wait_for(lambda: guest(pve, 104)["status"] == "stopped", what="vm 104 stopped")
    wait_for(lambda: service(pve, "vm:104")["crm_state"] == "stopped", what="crm state stopped")
    assert "service 'vm:104': state changed from 'started' to 'request_stop'" in log_lines(pve)


def test_resource_errors(pve):
    with pytest.raises(ResourceException) as exc:
        pve.cluster.ha.resources.post(sid="vm:100")
    assert exc.value.content == "create resource failed: cfs-lock 'domain-ha' error: resource ID 'vm:100' already defined"
    with pytest.raises(ResourceException) as exc:
        pve.cluster.ha.resources.post(sid="999")
    assert exc.value.content == "unable do detect SID from VMID - VM/CT 999 does not exist"
    with pytest.raises(ResourceException) as exc:
        pve.cluster.ha.resources.post(sid="vm:100", state="running")
    assert exc.value.status_code == 400
    assert exc.value.errors["state"].startswith("value 'running' does not have a value in the enumeration")
    with pytest.raises(ResourceException) as exc:
        pve.cluster.ha.resources("vm:101").delete()
    assert exc.value.content == "resource 'vm:101' is not HA managed"
    with pytest.raises(ResourceException) as exc:
        pve.cluster.ha.resources.post(sid="vm:101", group="gold")
    assert exc.value.content == "invalid parameter 'group': ha groups have been migrated to rules"


def test_node_failure_fences_and_recovers_on_an_allowed_node(sim, fast):
    pve = fast
    pve.cluster.ha.resources.post(sid="vm:104")
    pve.cluster.ha.rules.post(rule="db-pve3", type="node-affinity", resources="vm:104", nodes="pve3:2,pve1:1",
                              strict=1)
    wait_for(lambda: guest(pve, 104)["status"] == "running", what="vm 104 running on pve3")

    sim.admin("POST", "/nodes/pve3/power", state="off")
    recovered = wait_for(lambda: (s := service(pve, "vm:104")) and s["node"] == "pve1" and s["state"] == "started" and s,
                         what="vm:104 recovered to pve1")
    assert recovered["status"] == "vm:104 (pve1, started)"
    wait_for(lambda: guest(pve, 104)["status"] == "running" and guest(pve, 104)["node"] == "pve1", what="vm 104 running on pve1")
    lines = log_lines(pve)
    expected = ["node 'pve3': state changed from 'online' => 'unknown'",
                "node 'pve3': state changed from 'unknown' => 'fence'",
                "service 'vm:104': state changed from 'started' to 'fence'",
                "fencing: acknowledged - got agent lock for node 'pve3'",
                "service 'vm:104': state changed from 'fence' to 'recovery'",
                "recover service 'vm:104' from fenced node 'pve3' to node 'pve1'",
                "service 'vm:104': state changed from 'recovery' to 'started'  (node = pve1)"]
    positions = [lines.index(line) for line in expected]
    assert positions == sorted(positions)  # in this order on the timeline
    proxy = next(r for r in pve.cluster.resources.get(type="vm") if r["vmid"] == 201)
    assert proxy["node"] == "pve3" and proxy["status"] != "running"  # not HA managed: stays down
    manager = pve.cluster.ha.status.manager_status.get()["manager_status"]
    assert manager["node_status"]["pve3"] == "unknown"
    assert manager["service_status"]["vm:104"]["node"] == "pve1"
    lrm3 = next(i for i in pve.cluster.ha.status.current.get() if i["id"] == "lrm:pve3")
    assert "old timestamp - dead?" in lrm3["status"]

    sim.admin("POST", "/nodes/pve3/power", state="on")  # back: failback to the preferred node
    wait_for(lambda: guest(pve, 104)["node"] == "pve3" and guest(pve, 104)["status"] == "running", what="failback to pve3")
    assert "migrate service 'vm:104' to node 'pve3' (running)" in log_lines(pve)
    assert pve.cluster.ha.status.manager_status.get()["manager_status"]["node_status"]["pve3"] == "online"


def test_no_allowed_node_leaves_the_service_in_recovery(sim, fast):
    pve = fast
    pve.cluster.ha.resources.post(sid="vm:104")
    pve.cluster.ha.rules.post(rule="only-pve3", type="node-affinity", resources="vm:104", nodes="pve3", strict=1)
    wait_for(lambda: guest(pve, 104)["status"] == "running", what="vm 104 running")
    sim.admin("POST", "/nodes/pve3/power", state="off")
    wait_for(lambda: service(pve, "vm:104").get("crm_state") == "recovery", what="recovery")
    wait_for(lambda: "recovering service 'vm:104' from fenced node 'pve3' failed, no recovery node found" in log_lines(pve))
    time.sleep(0.3)  # several more CRM rounds change nothing
    assert service(pve, "vm:104")["crm_state"] == "recovery"


def test_partitioned_node_self_fences_and_loses_quorum(sim, fast):
    pve = fast
    pve.cluster.ha.resources.post(sid="vm:104")
    wait_for(lambda: guest(pve, 104)["status"] == "running", what="vm 104 running")
    assert guest(pve, 201)["status"] == "running"
    sim.admin("POST", "/nodes/pve3/partition", partitioned=1)
    # the isolated node's watchdog resets it: every guest there stops, HA ones come back elsewhere
    wait_for(lambda: guest(pve, 201)["status"] == "stopped", what="self-fence of pve3")
    wait_for(lambda: guest(pve, 104)["node"] != "pve3" and guest(pve, 104)["status"] == "running", what="vm 104 recovered")
    assert any("self-fenced" in line for line in log_lines(pve))
    sim.admin("POST", "/local-node", node="pve3")
    try:
        quorum = pve.cluster.ha.status.current.get()[0]
        assert quorum == {"id": "quorum", "type": "quorum", "node": "pve3", "quorate": 0,
                          "status": "No quorum on node 'pve3'!"}
        assert pve.cluster.status.get()[0]["quorate"] == 0
    finally:
        sim.admin("POST", "/local-node", node="pve1")
    sim.admin("POST", "/nodes/pve3/partition", partitioned=0)
    wait_for(lambda: pve.cluster.ha.status.manager_status.get()["manager_status"]["node_status"]["pve3"] == "online")


def test_quorum_loss_shows_and_blocks_ha_writes(sim, pve):
    sim.admin("POST", "/nodes/pve2/power", state="off")
    sim.admin("POST", "/nodes/pve3/partition", partitioned=1)
    quorum = pve.cluster.ha.status.current.get()[0]
    assert quorum["status"] == "No quorum on node 'pve1'!" and quorum["quorate"] == 0
    assert pve.cluster.ha.status.manager_status.get()["quorum"] == {"node": "pve1", "quorate": 0}
    with pytest.raises(ResourceException) as exc:
        pve.cluster.ha.resources.post(sid="vm:104")
    assert exc.value.status_code == 500 and exc.value.content == "cluster not ready - no quorum?"


def test_start_failures_restart_then_relocate_then_error(sim, fast):
    pve = fast
    sim.admin("POST", "/faults/task-failure", type="qmstart", message="start failed: QEMU exited with code 1", count=10)
    try:
        pve.cluster.ha.resources.post(sid="vm:104", max_restart=1, max_relocate=1)
        wait_for(lambda: service(pve, "vm:104").get("crm_state") == "error", what="error state")
    finally:
        sim.admin("POST", "/faults/clear")
    lines = log_lines(pve)
    assert "restart policy: retry number 1 for service 'vm:104'" in lines
    assert "starting service vm:104 on node 'pve3' failed, relocating service." in lines
    assert any(line.startswith("recovery policy for service vm:104 failed, entering error state") for line in lines)
    with pytest.raises(ResourceException) as exc:
        pve.cluster.ha.resources("vm:104").put(state="started")
    assert exc.value.content == "service 'vm:104' in error state, must be disabled and fixed first"
    pve.cluster.ha.resources("vm:104").put(state="disabled")
    wait_for(lambda: service(pve, "vm:104")["crm_state"] == "stopped", what="error cleared")


def test_migrate_and_relocate_requests(sim, fast):
    pve = fast
    answer = pve.cluster.ha.resources("vm:100").migrate.post(node="pve2")
    assert answer == {"sid": "vm:100", "requested-node": "pve2"}
    # the node-affinity rule prefers pve1 and failback is on: the CRM brings it back afterwards
    wait_for(lambda: "got crm command: migrate vm:100 pve2" in log_lines(pve))
    wait_for(lambda: "migrate service 'vm:100' to node 'pve1' (running)" in log_lines(pve), what="failback")
    wait_for(lambda: guest(pve, 100)["node"] == "pve1" and guest(pve, 100)["status"] == "running")
    migrations = [t for t in pve.cluster.tasks.get() if t["type"] == "qmigrate" and t["id"] == "100"]
    assert len(migrations) == 2 and all(t["status"] == "OK" for t in migrations)


def test_negative_resource_affinity_separates_services(sim, fast):
    pve = fast
    assert guest(pve, 100)["node"] == guest(pve, 200)["node"] == "pve1"
    # a node-affinity rule with several priorities cannot be combined with resource affinity: drop it
    pve.cluster.ha.rules("web-prefers-pve1").delete()
    pve.cluster.ha.rules.post(rule="keep-apart", type="resource-affinity", affinity="negative", resources="vm:100,ct:200")
    wait_for(lambda: guest(pve, 100)["node"] != guest(pve, 200)["node"], what="services separated")
    wait_for(lambda: guest(pve, 100)["status"] == guest(pve, 200)["status"] == "running", what="both running")
    blocked = pve.cluster.ha.resources("vm:100").migrate.post(node=guest(pve, 200)["node"])
    assert blocked["blocking-resources"] == [{"sid": "ct:200", "cause": "resource-affinity"}]


def test_rule_validation_errors(sim, pve):
    rules = pve.cluster.ha.rules
    with pytest.raises(ResourceException) as exc:
        rules.post(rule="r1", type="node-affinity", resources="vm:100")
    assert exc.value.status_code == 400 and exc.value.errors == {"nodes": "property is missing and it is not optional"}
    with pytest.raises(ResourceException) as exc:
        rules.post(rule="r1", type="node-affinity", resources="vm:100", nodes="pve1:x")
    assert exc.value.errors == {"nodes": "invalid format - value does not look like a valid ha group node"}
    with pytest.raises(ResourceException) as exc:
        rules.post(rule="r1", type="resource-affinity", resources="vm:100,ct:200", affinity="negative", nodes="pve1")
    assert exc.value.errors == {"nodes": "property is not defined in schema and the schema does not allow additional properties"}
    with pytest.raises(ResourceException) as exc:
        rules.post(rule="r1", type="node-affinity", resources="vm:101", nodes="pve1")
    assert exc.value.content == "create ha rule failed: cfs-lock 'domain-ha' error: cannot use unmanaged resource(s) vm:101."
    with pytest.raises(ResourceException) as exc:
        rules.post(rule="r1", type="node-affinity", resources="vm:100", nodes="pve9")
    assert exc.value.content == "create ha rule failed: cfs-lock 'domain-ha' error: cannot use non-existant node(s) pve9."
    with pytest.raises(ResourceException) as exc:
        rules.post(rule="web-prefers-pve1", type="node-affinity", resources="vm:100", nodes="pve1")
    assert exc.value.content.endswith("HA rule 'web-prefers-pve1' already defined")
    # infeasible: PVE wraps its 400 exception in the lock error, so the details follow the first line
    assert error_message(sim, "POST", "/cluster/ha/rules", rule="again", type="node-affinity", resources="vm:100",
                         nodes="pve2") == (500, "create ha rule failed: 400 Rule 'again' is invalid.\n"
                                                "resources: resource 'vm:100' is already used in another node affinity rule\n")
    with pytest.raises(ResourceException) as exc:
        rules.post(rule="lonely", type="resource-affinity", resources="ct:200", affinity="positive")
    assert exc.value.content == "create ha rule failed: 400 Rule 'lonely' is invalid."
    assert error_message(sim, "POST", "/cluster/ha/rules", rule="mixed", type="resource-affinity", affinity="positive",
                         resources="vm:100,ct:200")[1].endswith(
        "resources: resources are in node affinity rules with multiple priorities\n")
    assert [r["rule"] for r in rules.get()] == ["web-prefers-pve1"]  # nothing half-created


def test_rule_crud_and_rules_made_infeasible_are_flagged(pve):
    rules = pve.cluster.ha.rules
    rules("web-prefers-pve1").delete()
    rules.post(rule="together", type="resource-affinity", resources="vm:100,ct:200", affinity="positive",
               comment="web and dns")
    got = rules("together").get()
    assert {k: got[k] for k in ("rule", "type", "resources", "affinity", "comment")} == {
        "rule": "together", "type": "resource-affinity", "resources": "ct:200,vm:100", "affinity": "positive",
        "comment": "web and dns"}
    rules("together").put(type="resource-affinity", comment="changed")
    assert rules("together").get()["comment"] == "changed"
    assert [r["rule"] for r in rules.get(type="resource-affinity")] == ["together"]
    assert [r["rule"] for r in rules.get(resource="vm:100")] == ["together"]
    # removing a resource (purge) leaves a one-resource affinity rule: listed with its errors, not applied
    pve.cluster.ha.resources("ct:200").delete()
    flagged = rules("together").get()
    assert flagged["resources"] == "vm:100"
    assert flagged["errors"] == {"resources": ["rule is ineffective as there are less than two resources"]}
    rules("together").delete()
    with pytest.raises(ResourceException) as exc:
        rules("together").get()
    assert exc.value.content == "no such ha rule 'together'"


def test_groups_are_migrated_to_rules_in_9x(pve):
    with pytest.raises(ResourceException) as exc:
        pve.cluster.ha.groups.get()
    assert exc.value.content == "cannot index groups: ha groups have been migrated to rules"
    with pytest.raises(ResourceException) as exc:
        pve.cluster.ha.groups.post(group="gold", nodes="pve1")
    assert exc.value.content == "cannot create group: ha groups have been migrated to rules"


def test_legacy_groups_migrate_once_every_node_is_up(tmp_path):
    """A cluster upgraded with groups (pve3 still down): groups work until all LRMs are up."""
    scenario = tomllib.loads(Path(DEFAULT_SCENARIO).read_text())
    next(n for n in scenario["nodes"] if n["name"] == "pve3")["online"] = False
    scenario["ha"]["groups"] = [{"group": "gold", "nodes": "pve2:2,pve3:1", "restricted": 1, "nofailback": 1}]
    scenario["ha"]["resources"].append({"sid": "vm:101", "group": "gold"})
    path = tmp_path / "groups.json"
    path.write_text(json.dumps(scenario))
    with PvesimProcess(scenario=path, time_scale=FAST) as sim:
        pve = sim.api()
        assert [g["group"] for g in pve.cluster.ha.groups.get()] == ["gold"]
        pve.cluster.ha.groups.post(group="silver", nodes="pve1,pve2", comment="spare")
        pve.cluster.ha.groups("silver").put(nodes="pve1:2,pve2:1")
        assert pve.cluster.ha.groups("silver").get()["nodes"] == "pve1:2,pve2:1"
        assert pve.cluster.ha.resources("vm:101").get()["group"] == "gold"
        sim.admin("POST", "/nodes/pve3/power", state="on")
        rule = wait_for(lambda: next((r for r in pve.cluster.ha.rules.get() if r["rule"] == "ha-group-gold"), None),
                        what="group migration")
        assert rule["nodes"] == "pve2:2,pve3:1" and rule["strict"] == 1 and rule["resources"] == "vm:101"
        assert rule["comment"] == "Generated from HA group 'gold'."
        resource = pve.cluster.ha.resources("vm:101").get()
        assert "group" not in resource and resource["failback"] == 0
        with pytest.raises(ResourceException) as exc:
            pve.cluster.ha.groups.get()
        assert exc.value.content == "cannot index groups: ha groups have been migrated to rules"


def test_disarm_and_arm(sim, pve):
    pve.cluster.ha.status("disarm-ha").post(**{"resource-mode": "freeze"})
    fencing = wait_for(lambda: (f := next(i for i in pve.cluster.ha.status.current.get() if i["type"] == "fencing"))
                       and f["armed-state"] == "disarmed" and f, what="disarmed")
    assert fencing["status"] == "disarmed, resource mode: freeze (CRM watchdog released)"
    assert service(pve, "vm:100")["crm_state"] == "freeze"
    pve.cluster.ha.status("arm-ha").post()
    wait_for(lambda: next(i for i in pve.cluster.ha.status.current.get() if i["type"] == "fencing")["armed-state"] == "armed")
    wait_for(lambda: service(pve, "vm:100")["crm_state"] == "started")
