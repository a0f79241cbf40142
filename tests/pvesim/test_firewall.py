"""Firewall API: options, rule positions, security groups, IP sets, aliases, refs, macros, logs, errors."""

import pytest
from proxmoxer.core import ResourceException

pytestmark = pytest.mark.filterwarnings("ignore::urllib3.exceptions.InsecureRequestWarning")


def error(call) -> ResourceException:
    with pytest.raises(ResourceException) as exc:
        call()
    return exc.value


def summary(rules):
    return [(r["pos"], r["type"], r["action"], r.get("dport") or r.get("macro")) for r in rules]


def test_scenario_is_loaded(pve):
    fw = pve.cluster.firewall
    assert {k: v for k, v in fw.options.get().items() if k != "digest"} == {
        "enable": 1, "policy_in": "DROP", "policy_out": "ACCEPT"}
    assert summary(fw.rules.get()) == [(0, "in", "ACCEPT", "SSH")]
    assert [g["group"] for g in fw.groups.get()] == ["webserver"]
    assert [e["cidr"] for e in fw.ipset("management").get()] == ["10.10.0.0/24"]


def test_rule_positions_insert_move_delete(pve):
    rules = pve.cluster.firewall.rules
    rules.post(type="in", action="ACCEPT", proto="tcp", dport="443", enable=1)  # no pos: goes on top
    rules.post(type="in", action="DROP", proto="tcp", dport="23", pos=1)
    rules.post(type="out", action="REJECT", proto="udp", dport="53", pos=99)  # past the end: appended
    assert summary(rules.get()) == [(0, "in", "ACCEPT", "443"), (1, "in", "DROP", "23"), (2, "in", "ACCEPT", "SSH"),
                                    (3, "out", "REJECT", "53")]
    rules(0).put(moveto=3)  # lands before the rule now at index 3
    assert [r.get("dport") or r.get("macro") for r in rules.get()] == ["23", "SSH", "443", "53"]
    rules(3).put(moveto=0)
    assert [r.get("dport") or r.get("macro") for r in rules.get()] == ["53", "23", "SSH", "443"]
    rules(1).delete()
    assert [r.get("dport") or r.get("macro") for r in rules.get()] == ["53", "SSH", "443"]
    assert rules(2).get()["dport"] == "443" and rules(2).get()["pos"] == 2


def test_new_rules_are_disabled_unless_enabled(pve):
    pve.cluster.firewall.rules.post(type="in", action="ACCEPT", macro="http")
    rule = pve.cluster.firewall.rules(0).get()
    assert rule["enable"] == 0 and rule["macro"] == "HTTP"


def test_rule_update_and_delete_properties(pve):
    rules = pve.cluster.firewall.rules
    rules.post(type="in", action="ACCEPT", proto="tcp", dport="8006", source="10.0.0.0/8", comment="gui", enable=1)
    rules(0).put(action="DROP", delete="comment,source")
    rule = rules(0).get()
    assert rule["action"] == "DROP" and "comment" not in rule and "source" not in rule and rule["dport"] == "8006"
    assert error(lambda: rules(0).put(delete="type")).errors == {"delete": "unable to delete required property 'type'"}


def test_missing_positions(pve):
    for call in (lambda: pve.cluster.firewall.rules(5).get(), lambda: pve.cluster.firewall.rules(5).delete(),
                 lambda: pve.cluster.firewall.rules(5).put(comment="x")):
        exc = error(call)
        assert exc.status_code == 500 and exc.content == "no rule at position 5"


def test_rule_validation(pve):
    rules = pve.cluster.firewall.rules
    assert error(lambda: rules.post(type="in")).errors == {"action": "property is missing and it is not optional"}
    assert error(lambda: rules.post(type="in", action="ALLOW")).errors == {"action": "unknown action 'ALLOW'"}
    assert error(lambda: rules.post(type="group", action="nosuch")).errors == {"action": "security group 'nosuch' does not exist"}
    assert error(lambda: rules.post(type="in", action="ACCEPT", macro="Nope")).errors == {"macro": "unknown macro 'Nope'"}
    assert error(lambda: rules.post(type="in", action="ACCEPT", dport="22")).errors == {
        "proto": "missing property - 'dport' requires this property"}
    assert error(lambda: rules.post(type="in", action="ACCEPT", proto="icmp", dport="22")).errors == {
        "dport": "protocol 'icmp' does not support ports"}
    assert error(lambda: rules.post(type="in", action="ACCEPT", source="+nosuch")).errors == {"source": "no such ipset 'nosuch'"}
    assert error(lambda: rules.post(type="in", action="ACCEPT", dest="nosuch")).errors == {"dest": "no such alias 'nosuch'"}
    assert error(lambda: rules.post(type="sideways", action="ACCEPT")).errors == {
        "type": "value 'sideways' does not have a value in the enumeration 'in, out, forward, group'"}
    assert len(rules.get()) == 1


def test_digest_guards_against_concurrent_edits(pve):
    rules = pve.cluster.firewall.rules
    digest = rules.get()[0]["digest"]
    rules.post(type="in", action="ACCEPT", proto="tcp", dport="80", digest=digest)
    exc = error(lambda: rules(0).delete(digest=digest))
    assert exc.status_code == 500 and exc.content == "detected modified configuration - file changed by other user? Try again."


def test_security_groups(pve):
    groups = pve.cluster.firewall.groups
    assert error(lambda: groups.post(group="webserver")).errors == {"group": "Security group 'webserver' already exists"}
    groups.post(group="db", comment="databases")
    groups("db").post(type="in", action="ACCEPT", proto="tcp", dport="5432", enable=1)
    groups("db").post(type="in", action="ACCEPT", macro="Ping", enable=1, pos=1)
    assert summary(groups("db").get()) == [(0, "in", "ACCEPT", "5432"), (1, "in", "ACCEPT", "Ping")]
    groups("db")(0).put(moveto=2)
    assert groups("db")(1).get()["dport"] == "5432"
    pve.cluster.firewall.rules.post(type="group", action="db", enable=1)
    groups.post(group="database", rename="db")
    assert pve.cluster.firewall.rules(0).get()["action"] == "database"  # references follow the rename
    assert error(lambda: groups("database").delete()).content == "Security group 'database' is not empty"
    exc = error(lambda: groups("nosuch").get())
    assert exc.status_code == 500 and exc.content == "no such security group 'nosuch'"
    assert error(lambda: groups("webserver").post(type="group", action="database")).errors == {
        "type": "security groups cannot contain group rules"}


def test_ipsets(pve):
    ipset = pve.cluster.firewall.ipset
    assert error(lambda: ipset.post(name="management")).errors == {"name": "IPSet 'management' already exists"}
    ipset.post(name="blacklist", comment="bad actors")
    ipset("blacklist").post(cidr="10.0.0.1")
    ipset("blacklist").post(cidr="192.0.2.0/24", comment="docs net", nomatch=1)
    exc = error(lambda: ipset("blacklist").post(cidr="10.0.0.1"))
    assert exc.status_code == 400 and exc.errors == {"cidr": "address '10.0.0.1' already exists"}
    entry = ipset("blacklist")("192.0.2.0/24").get()
    assert entry["comment"] == "docs net" and entry["nomatch"] == 1
    ipset("blacklist")("192.0.2.0/24").put(nomatch=0)
    assert "nomatch" not in ipset("blacklist")("192.0.2.0/24").get()
    assert error(lambda: ipset("blacklist").delete()).content == "IPSet 'blacklist' is not empty"
    ipset("blacklist")("10.0.0.1").delete()
    assert [e["cidr"] for e in ipset("blacklist").get()] == ["192.0.2.0/24"]
    ipset("blacklist").delete(force=1)
    assert error(lambda: ipset("blacklist").get()).content == "no such IPSet 'blacklist'"


def test_aliases_and_refs(pve):
    fw = pve.cluster.firewall
    fw.aliases.post(name="gateway", cidr="10.10.10.1", comment="core router")
    assert error(lambda: fw.aliases.post(name="Gateway", cidr="10.0.0.1")).errors == {
        "name": "alias 'Gateway' already exists"}
    fw.aliases("gateway").put(cidr="10.10.10.254", rename="router")
    assert fw.aliases("router").get()["cidr"] == "10.10.10.254"
    assert error(lambda: fw.aliases("gateway").get()).content == "no such alias 'gateway'"
    fw.rules.post(type="in", action="ACCEPT", source="router", macro="SSH", enable=1)
    fw.ipset("management").post(cidr="router")
    refs = fw.refs.get()
    assert {(r["type"], r["ref"], r["scope"]) for r in refs} == {("alias", "dc/router", "dc"), ("ipset", "+dc/management", "dc")}
    assert [r["name"] for r in fw.refs.get(type="alias")] == ["router"]


def test_options_reject_ips_keys_and_delete(pve):
    options = pve.cluster.firewall.options
    exc = error(lambda: options.put(ips=1, ips_queues="0:3"))
    assert exc.status_code == 400 and set(exc.errors) == {"ips", "ips_queues"}
    assert exc.errors["ips"] == "property is not defined in schema and the schema does not allow additional properties"
    options.put(policy_in="REJECT", log_ratelimit="enable=1,burst=10,rate=5/second")
    assert options.get()["log_ratelimit"] == "enable=1,burst=10,rate=5/second"
    options.put(delete="policy_in,log_ratelimit")
    assert "policy_in" not in options.get()
    assert error(lambda: options.put(policy_in="ALLOW")).errors == {
        "policy_in": "value 'ALLOW' does not have a value in the enumeration 'ACCEPT, REJECT, DROP'"}
    vm_options = pve.nodes("pve1").qemu(100).firewall.options
    assert error(lambda: vm_options.put(ips=1)).errors == {
        "ips": "property is not defined in schema and the schema does not allow additional properties"}


def test_node_firewall(pve):
    node = pve.nodes("pve2").firewall
    node.options.put(enable=1, nftables=1, log_level_in="info")
    assert node.options.get()["nftables"] == 1
    node.rules.post(type="in", action="ACCEPT", macro="Ceph", iface="vmbr1", enable=1)
    assert summary(node.rules.get()) == [(0, "in", "ACCEPT", "Ceph")]
    assert pve.nodes("pve1").firewall.rules.get() == []
    assert node.log.get(limit=2)[0]["n"] == 1 and len(node.log.get(limit=2)) == 2
    assert error(lambda: pve.nodes("pve2").firewall.options.put(nf_conntrack_max=10)).errors == {
        "nf_conntrack_max": "value must have a minimum value of 32768"}


@pytest.mark.parametrize("kind,vmid,node", [("qemu", 100, "pve1"), ("lxc", 200, "pve1")])
def test_guest_firewall(pve, kind, vmid, node):
    fw = getattr(pve.nodes(node), kind)(vmid).firewall
    assert fw.log.get() == []  # guest firewall off: nothing logged
    fw.options.put(enable=1, policy_in="DROP", macfilter=0)
    assert {k: v for k, v in fw.options.get().items() if k != "digest"} == {"enable": 1, "policy_in": "DROP", "macfilter": 0}
    fw.ipset.post(name="ipfilter-net0")
    fw.ipset("ipfilter-net0").post(cidr="10.20.0.10")
    fw.aliases.post(name="self", cidr="10.20.0.10")
    fw.rules.post(type="in", action="ACCEPT", dest="+guest/ipfilter-net0", source="+dc/management", proto="tcp",
                  dport="22", enable=1, iface="net0")
    fw.rules.post(type="group", action="webserver", enable=1)
    assert summary(fw.rules.get()) == [(0, "group", "webserver", None), (1, "in", "ACCEPT", "22")]
    refs = {(r["scope"], r["type"], r["name"]) for r in fw.refs.get()}
    assert refs == {("dc", "ipset", "management"), ("guest", "ipset", "ipfilter-net0"), ("guest", "alias", "self")}
    lines = fw.log.get()
    assert lines[1]["t"].startswith(f"{vmid} 6 tap{vmid}i0-IN ") and "policy DROP" in lines[1]["t"]
    assert pve.cluster.firewall.ipset.get()[0]["name"] == "management"  # guest sets stay in the guest


def test_guest_firewall_of_missing_guest_is_500(pve):
    exc = error(lambda: pve.nodes("pve1").qemu(999).firewall.rules.get())
    assert exc.status_code == 500 and exc.content == "Configuration file 'nodes/pve1/qemu-server/999.conf' does not exist"
    exc = error(lambda: pve.nodes("pve2").lxc(200).firewall.options.get())  # 200 lives on pve1
    assert exc.content == "Configuration file 'nodes/pve2/lxc/200.conf' does not exist"
    exc = error(lambda: pve.nodes("pve1").lxc(100).firewall.options.get())  # 100 is a VM
    assert exc.content == "Configuration file 'nodes/pve1/lxc/100.conf' does not exist"


def test_macros(pve):
    macros = {m["macro"]: m["descr"] for m in pve.cluster.firewall.macros.get()}
    assert {"SSH", "HTTP", "HTTPS", "DNS", "Ping", "Ceph", "RDP"} <= set(macros)
    assert macros["SSH"] == "Secure shell traffic"
