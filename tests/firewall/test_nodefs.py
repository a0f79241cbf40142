"""The file formats, without a node: the gateway's [OPTIONS] editor and EVE parser, and pvesim's
.fw writer and reader (what pve-firewall writes and reads)."""

from __future__ import annotations

from pvesim import fwfile

from apps.firewall.ips import addresses_of
from apps.proxmox import nodefs

FILE = """# managed by hand
[OPTIONS]

enable: 1
# Suricata for this one
ips: 0
policy_in: DROP

[IPSET ipfilter-net0] # only this address
10.0.0.5

[RULES]

IN SSH(ACCEPT) -i net0 -source 192.0.2.0/24 # office
|OUT DROP -p tcp -dport 25
GROUP webservers -i net0
"""


def test_with_options_changes_only_the_lines_it_is_given():
    changed = nodefs.with_options(FILE, {"ips": "1", "ips_queues": "0:3"})
    assert changed == FILE.replace("ips: 0\npolicy_in: DROP\n", "ips: 1\npolicy_in: DROP\nips_queues: 0:3\n")
    assert nodefs.parse_options(changed) == {"enable": "1", "ips": "1", "policy_in": "DROP", "ips_queues": "0:3"}
    assert nodefs.with_options(changed, {"ips_queues": None, "ips": "0"}) == FILE
    assert nodefs.with_options(FILE, {"ips": "0"}) == FILE


def test_with_options_adds_the_section_when_missing_and_drops_duplicates():
    rules_only = "[RULES]\n\nIN ACCEPT -p tcp -dport 22\n"
    assert nodefs.with_options(rules_only, {"ips": "1"}) == "[OPTIONS]\n\nips: 1\n\n" + rules_only
    assert nodefs.with_options("", {"ips": "1"}) == "[OPTIONS]\n\nips: 1\n\n"
    assert nodefs.with_options("[options]\nIPS: 1\nips: 0\n", {"ips": "1"}) == "[options]\nips: 1\n"
    assert nodefs.with_options("[OPTIONS]\n", {"ips": "1"}) == "[OPTIONS]\n\nips: 1\n"
    for bad in ({"ips": "1\n[RULES]"}, {"bad key": "1"}):
        try:
            nodefs.with_options(FILE, bad)
        except ValueError:
            continue
        raise AssertionError(f"{bad} was accepted")


def test_ips_queues_syntax():
    assert nodefs.check_ips_queues("0") == "0" and nodefs.check_ips_queues(" 0:3 ") == "0:3"
    for bad, why in (("3:1", "backwards"), ("a", "a queue number"), ("70000", "65535"), ("1:2:3", "a queue")):
        try:
            nodefs.check_ips_queues(bad)
        except ValueError as exc:
            assert why in str(exc)
        else:
            raise AssertionError(bad)


def test_parse_alert_reads_suricatas_eve_lines():
    event = nodefs.parse_event('{"timestamp":"2017-04-07T22:24:37.251547+0100","flow_id":586497171462735,'
                               '"event_type":"alert","src_ip":"192.168.2.14","src_port":50096,'
                               '"dest_ip":"209.53.113.5","dest_port":80,"proto":"TCP",'
                               '"ether":{"src_mac":"BC:24:11:0A:01:00","dest_mac":"00:11:22:33:44:55"},'
                               '"alert":{"action":"allowed","gid":1,"signature_id":2018358,"rev":10,'
                               '"signature":"ET HUNTING GENERIC SUSPICIOUS POST","category":"Potentially Bad '
                               'Traffic","severity":2},"app_proto":"http"}')
    alert = nodefs.parse_alert(event)
    assert alert["timestamp"].isoformat() == "2017-04-07T22:24:37.251547+01:00"
    assert (alert["signature_id"], alert["severity"], alert["src_mac"], alert["dest_port"]) == \
        (2018358, 2, "bc:24:11:0a:01:00", 80)
    assert nodefs.parse_alert({"event_type": "flow"}) is None
    assert nodefs.parse_alert({"event_type": "alert", "alert": {"signature": "x"}}) is None  # no time
    assert nodefs.parse_event("{broken") is None and nodefs.parse_event("[1]") is None


def test_pvesim_reads_back_what_it_writes_as_pve_firewall_does():
    conf, warnings = fwfile.parse(FILE + "NONSENSE LINE\n")
    assert warnings == ["line 17: unknown rule type 'NONSENSE'"]
    assert conf["options"] == {"enable": 1, "ips": 0, "policy_in": "DROP"}
    assert conf["ipsets"] == {"ipfilter-net0": {"comment": "only this address", "entries": [{"cidr": "10.0.0.5"}]}}
    assert conf["rules"] == [
        {"enable": 1, "type": "in", "macro": "SSH", "action": "ACCEPT", "iface": "net0", "source": "192.0.2.0/24",
         "comment": "office"},
        {"enable": 0, "type": "out", "action": "DROP", "proto": "tcp", "dport": "25"},
        {"enable": 1, "type": "group", "action": "webservers", "iface": "net0"}]
    again, warnings = fwfile.parse(fwfile.format(conf))
    assert again == conf and warnings == []
    assert fwfile.format({"options": {}, "rules": [], "ipsets": {}, "aliases": {}}) == ""


def test_a_guests_addresses_come_from_its_config():
    macs, ips = addresses_of({"net0": "virtio=BC:24:11:0A:01:00,bridge=vmbr0,firewall=1", "ipconfig0": "ip=10.1.2.3/24,gw=10.1.2.1",
                              "net1": "name=eth0,hwaddr=BC:24:11:0B:02:01,ip=dhcp,ip6=2001:db8::5/64", "scsi0": "x"})
    assert macs == {"bc:24:11:0a:01:00", "bc:24:11:0b:02:01"}
    assert {"10.1.2.3", "2001:db8::5", "fe80::be24:11ff:fe0a:100"} <= ips
