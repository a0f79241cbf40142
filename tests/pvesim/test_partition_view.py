"""A corosync partition as the answering node sees it: /cluster/resources, /cluster/status and
/nodes take node state from the answering node's membership (pve-manager's
PVE::API2Tools::extract_node_stats reads PVE::Cluster::get_members), so a node cut off from it is
`offline` there, without usage, though it still runs; the answering node always sees itself."""


def node_states(pve) -> dict:
    return {i["node"]: i["status"] for i in pve.cluster.resources.get(type="node")}


def members(pve) -> dict:
    return {i["name"]: i["online"] for i in pve.cluster.status.get() if i["type"] == "node"}


def test_a_node_cut_off_from_the_answering_node_is_offline_everywhere(sim, pve):
    sim.admin("POST", "/nodes/pve3/partition", partitioned=1)
    try:
        assert node_states(pve) == {"pve1": "online", "pve2": "online", "pve3": "offline"}
        assert members(pve) == {"pve1": 1, "pve2": 1, "pve3": 0}
        assert {i["node"]: i["status"] for i in pve.nodes.get()}["pve3"] == "offline"
        pve3 = next(i for i in pve.cluster.resources.get(type="node") if i["node"] == "pve3")
        assert "cpu" not in pve3 and "uptime" not in pve3 and pve3["maxcpu"] > 0  # last sample's maximums
        # Its guests still run: Proxmox keeps their last reported state for a while.
        on_pve3 = [i for i in pve.cluster.resources.get(type="vm") if i["node"] == "pve3"]
        assert on_pve3 and all(i["status"] != "unknown" for i in on_pve3)
    finally:
        sim.admin("POST", "/nodes/pve3/partition", partitioned=0)
    assert set(node_states(pve).values()) == {"online"}


def test_a_partitioned_answering_node_sees_only_itself(sim, pve):
    sim.admin("POST", "/nodes/pve2/partition", partitioned=1)
    sim.admin("POST", "/local-node", node="pve2")
    try:
        assert node_states(pve) == {"pve1": "offline", "pve2": "online", "pve3": "offline"}
        assert members(pve) == {"pve1": 0, "pve2": 1, "pve3": 0}
        assert pve.cluster.status.get()[0]["quorate"] == 0
    finally:
        sim.admin("POST", "/local-node", node="pve1")
        sim.admin("POST", "/nodes/pve2/partition", partitioned=0)


def test_a_powered_off_node_is_offline_as_before(sim, pve):
    sim.admin("POST", "/nodes/pve3/power", state="off")
    assert node_states(pve)["pve3"] == "offline"
    assert members(pve)["pve3"] == 0
