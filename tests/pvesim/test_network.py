"""GET /nodes/{node}/network: the node's bridges, bonds, VLANs and NICs from the scenario."""

from .conftest import error


def by_iface(items):
    return {i["iface"]: i for i in items}


def test_each_demo_node_has_a_vlan_aware_bridge_on_a_bond_of_physical_nics(pve):
    for n, node in enumerate(("pve1", "pve2", "pve3"), start=11):
        ifaces = by_iface(pve.nodes(node).network.get())
        bridge = ifaces["vmbr0"]
        assert bridge["type"] == "bridge" and bridge["bridge_ports"] == "bond0" and bridge["bridge_vlan_aware"] == 1
        assert bridge["cidr"] == f"10.10.10.{n}/24" and bridge["address"] == f"10.10.10.{n}" and bridge["netmask"] == "24"
        assert bridge["gateway"] == "10.10.10.1" and bridge["method"] == "static" and bridge["comments"]
        assert bridge["active"] == 1 and bridge["autostart"] == 1
        bond = ifaces["bond0"]
        assert bond["type"] == "bond" and bond["slaves"] == "eno1 eno2" and bond["bond_mode"] == "802.3ad"
        assert ifaces["eno1"]["type"] == "eth" and ifaces["eno1"]["exists"] == 1 and ifaces["eno1"]["method"] == "manual"
        assert ifaces["ens1f0"]["active"] == 0
        vlan = ifaces["vmbr0.50"]
        assert vlan["type"] == "vlan" and vlan["vlan-raw-device"] == "vmbr0" and vlan["vlan-id"] == 50


def test_type_filter(pve):
    assert [i["iface"] for i in pve.nodes("pve2").network.get(type="any_bridge")] == ["vmbr0"]
    assert [i["iface"] for i in pve.nodes("pve2").network.get(type="bond")] == ["bond0"]
    assert {i["iface"] for i in pve.nodes("pve2").network.get(type="eth")} == {"eno1", "eno2", "ens1f0"}
    assert len(pve.nodes("pve2").network.get(type="include_sdn")) == len(pve.nodes("pve2").network.get())
    assert error(lambda: pve.nodes("pve2").network.get(type="wifi"), 400).errors == {
        "type": "value 'wifi' does not have a value in the enumeration 'bridge, bond, eth, alias, vlan, fabric, "
                "OVSBridge, OVSBond, OVSPort, OVSIntPort, vnet, any_bridge, any_local_bridge, include_sdn'"}


def test_an_offline_node_does_not_answer(sim, pve):
    sim.admin("POST", "/nodes/pve3/power", state="off")
    error(lambda: pve.nodes("pve3").network.get(), 595)


def test_scenario_nodes_without_a_list_get_a_bonded_bridge():
    from pvesim import scenario

    cluster = scenario.build(scenario.generate_scale(2, 4))
    try:
        ifaces = by_iface(cluster.network["pve002"])
        assert ifaces["vmbr0"]["bridge_vlan_aware"] == 1 and ifaces["vmbr0"]["cidr"].startswith(cluster.nodes["pve002"].ip)
        assert ifaces["bond0"]["slaves"] == "eno1 eno2" and ifaces["eno1"]["type"] == "eth"
    finally:
        cluster.stop()


def test_a_bad_scenario_entry_names_the_field():
    import pytest

    from pvesim.api.network import interface

    with pytest.raises(ValueError, match="node pve1 network entry 2: 'type' must be one of"):
        interface({"iface": "x", "type": "wifi"}, 2, "node pve1 network entry 2")
