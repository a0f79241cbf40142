"""apps.proxmox.firewall against pvesim: rules of each level round-trip (create, read, update,
move, delete), security groups, IP sets with nomatch, aliases and options."""

from __future__ import annotations

import pytest

from apps.proxmox import GuestRef, ProxmoxError
from apps.proxmox import firewall as fw

GUEST = fw.Level.of_guest(GuestRef("pve1", "qemu", 100))
LEVELS = [fw.Level.cluster(), fw.Level.of_node("pve2"), GUEST, fw.Level.of_guest(GuestRef("pve1", "lxc", 200))]


@pytest.mark.parametrize("level", LEVELS, ids=lambda lv: lv.kind + (f"-{lv.guest.kind}" if lv.guest else ""))
def test_rules_round_trip_at_every_level(pve, level):
    before, digest = fw.rules(pve, level)
    fw.create_rule(pve, level, {"type": "in", "action": "ACCEPT", "proto": "tcp", "dport": "8000:8080",
                                "source": "198.51.100.0/24", "comment": "app", "enable": 1}, digest=digest)
    fw.create_rule(pve, level, {"type": "out", "action": "DROP", "macro": "SMTP", "log": "info", "enable": 0})
    rules, _ = fw.rules(pve, level)
    assert len(rules) == len(before) + 2
    top, second = rules[0], rules[1]
    assert (top["pos"], top["type"], top["action"], top["macro"], top["log"], int(top["enable"])) == \
        (0, "out", "DROP", "SMTP", "info", 0)
    assert (second["proto"], second["dport"], second["source"], second["comment"], int(second["enable"])) == \
        ("tcp", "8000:8080", "198.51.100.0/24", "app", 1)

    fw.update_rule(pve, level, 1, {"type": "in", "action": "REJECT", "proto": "udp", "dport": "53"},
                   delete=["source", "comment"])
    changed = fw.rules(pve, level)[0][1]
    assert (changed["action"], changed["proto"], changed["dport"]) == ("REJECT", "udp", "53")
    assert "source" not in changed and "comment" not in changed

    fw.move_rule(pve, level, 0, 2)  # the SMTP rule goes below the DNS one
    moved, _ = fw.rules(pve, level)
    assert [r.get("macro") or r.get("dport") for r in moved[:2]] == ["53", "SMTP"]

    fw.delete_rule(pve, level, 1)
    fw.delete_rule(pve, level, 0)
    assert fw.rules(pve, level)[0] == before


def test_security_group_rules_and_lifecycle(pve):
    fw.create_group(pve, "t9_db", comment="database")
    assert any(g["group"] == "t9_db" and g.get("comment") == "database" for g in fw.groups(pve))
    level = fw.Level.cluster()
    fw.create_rule(pve, level, {"type": "in", "action": "ACCEPT", "macro": "PostgreSQL", "enable": 1}, group="t9_db")
    rules, _ = fw.rules(pve, level, group="t9_db")
    assert [(r["pos"], r["macro"]) for r in rules] == [(0, "PostgreSQL")]
    with pytest.raises(ProxmoxError, match="not empty"):
        fw.delete_group(pve, "t9_db")
    fw.delete_rule(pve, level, 0, group="t9_db")
    fw.delete_group(pve, "t9_db")
    assert "t9_db" not in {g["group"] for g in fw.groups(pve)}
    with pytest.raises(ValueError):
        fw.rules(pve, GUEST, group="webserver")


@pytest.mark.parametrize("level", [fw.Level.cluster(), GUEST], ids=["cluster", "guest"])
def test_ipsets_with_nomatch_and_aliases(pve, level):
    fw.create_ipset(pve, level, "office", comment="HQ")
    fw.add_ipset_entry(pve, level, "office", "192.0.2.0/24")
    fw.add_ipset_entry(pve, level, "office", "192.0.2.66", nomatch=True, comment="printer")
    fw.add_ipset_entry(pve, level, "office", "2001:db8::/64")
    entries = {e["cidr"]: e for e in fw.ipset_entries(pve, level, "office")}
    assert set(entries) == {"192.0.2.0/24", "192.0.2.66", "2001:db8::/64"}
    assert int(entries["192.0.2.66"].get("nomatch", 0)) == 1 and not entries["192.0.2.0/24"].get("nomatch")
    fw.update_ipset_entry(pve, level, "office", "192.0.2.66", nomatch=False)
    assert not {e["cidr"]: e for e in fw.ipset_entries(pve, level, "office")}["192.0.2.66"].get("nomatch")
    fw.delete_ipset_entry(pve, level, "office", "2001:db8::/64")
    assert len(fw.ipset_entries(pve, level, "office")) == 2
    assert "office" in {s["name"] for s in fw.ipsets(pve, level)}

    fw.create_alias(pve, level, "gateway6", "2001:db8::1", comment="v6 gw")
    fw.update_alias(pve, level, "gateway6", "2001:db8::2")
    assert {a["name"]: a["cidr"] for a in fw.aliases(pve, level)}["gateway6"] == "2001:db8::2"
    refs = {r["ref"] for r in fw.refs(pve, level)}
    scope = "guest" if level.kind == "guest" else "dc"
    assert f"+{scope}/office" in refs and f"{scope}/gateway6" in refs
    fw.delete_alias(pve, level, "gateway6")
    fw.delete_ipset(pve, level, "office", force=True)
    assert "office" not in {s["name"] for s in fw.ipsets(pve, level)}


def test_options_macros_and_logs(pve):
    options, digest = fw.options(pve, GUEST)
    fw.set_options(pve, GUEST, digest=digest, enable=1, policy_in="REJECT", log_level_in="info")
    options, _ = fw.options(pve, GUEST)
    assert (int(options["enable"]), options["policy_in"], options["log_level_in"]) == (1, "REJECT", "info")
    fw.set_options(pve, GUEST, delete=["policy_in"])
    assert "policy_in" not in fw.options(pve, GUEST)[0]
    with pytest.raises(ProxmoxError, match="modified configuration"):
        fw.set_options(pve, GUEST, digest=digest, enable=0)  # stale digest
    assert "SSH" in fw.macros(pve)
    assert all("t" in line for line in fw.log(pve, GUEST))
    assert fw.log(pve, fw.Level.of_node("pve1"))


def test_pvesim_checks_ports_as_proxmox_does(pve):
    """Port 0 and ranges are Proxmox syntax; a backwards range and an empty list item are refused."""
    level = fw.Level.cluster()
    fw.create_rule(pve, level, {"type": "in", "action": "ACCEPT", "proto": "udp", "dport": "0,67:68,ntp"})
    for bad, text in (("90:80", "backwards range"), ("22,,23", "extraneous commas"), ("70000", "invalid port")):
        with pytest.raises(ProxmoxError) as caught:
            fw.create_rule(pve, level, {"type": "in", "action": "ACCEPT", "proto": "tcp", "dport": bad})
        assert text in str(caught.value.errors.get("dport"))
