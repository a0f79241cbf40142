"""Rules are checked with Proxmox's syntax before anything is sent: each mistake is a field error."""

from __future__ import annotations

import pytest
from django.core.exceptions import ValidationError

from apps.firewall.validation import RuleContext, clean_rule, port_problem

MACROS = {"SSH": "Secure shell", "HTTP": "Web", "DNS": "Domain Name System"}


def context(level="guest", **kwargs):
    base = {"level": level, "macros": MACROS, "groups": {"webserver", "t1_db", "t2_db"},
            "ipsets": {"management": "dc", "office": "dc,guest", "t2_hosts": "dc", "local": "guest"},
            "aliases": {"gw": "dc", "printer": "guest"}}
    base.update(kwargs)
    return RuleContext(**base)


def errors(data, ctx=None) -> dict:
    with pytest.raises(ValidationError) as caught:
        clean_rule(data, ctx or context())
    return caught.value.message_dict


def test_a_good_rule_comes_back_as_proxmox_wants_it():
    rule = clean_rule({"type": "in", "action": "ACCEPT", "macro": "ssh", "source": "+dc/management",
                       "dest": "guest/printer", "iface": "net0", "log": "info", "enable": True, "comment": "x"},
                      context())
    assert rule == {"type": "in", "action": "ACCEPT", "macro": "SSH", "source": "+dc/management",
                    "dest": "guest/printer", "iface": "net0", "log": "info", "comment": "x", "enable": 1}
    assert clean_rule({"type": "in", "action": "DROP", "proto": "TCP", "dport": "22,80:90,https",
                       "source": "2001:db8::/64"}, context())["proto"] == "tcp"
    assert clean_rule({"type": "group", "action": "webserver"}, context())["action"] == "webserver"


@pytest.mark.parametrize("spec, problem", [
    ("22", None), ("0", None), ("80:85", None), ("22,443,8000:8080", None), ("ssh,http", None),
    ("65536", "65535"), ("90:80", "backwards range"), ("22,,80", "extraneous commas"), ("22-80", "invalid port"),
    ("nosuchservice", "invalid port"), ("1:70000", "65535"),
])
def test_port_lists_and_ranges(spec, problem):
    found = port_problem(spec)
    assert (found is None) if problem is None else (problem in found)


@pytest.mark.parametrize("data, field, text", [
    ({"type": "sideways", "action": "ACCEPT"}, "type", "unknown rule type"),
    ({"action": "ACCEPT"}, "type", "required"),
    ({"type": "in", "action": "ALLOW"}, "action", "unknown action"),
    ({"type": "group", "action": "nosuchgroup"}, "action", "no such security group"),
    ({"type": "forward", "action": "ACCEPT"}, "type", "forward rules"),
    ({"type": "in", "action": "ACCEPT", "macro": "Telepathy"}, "macro", "unknown macro"),
    ({"type": "in", "action": "ACCEPT", "proto": "tcpp"}, "proto", "unknown protocol"),
    ({"type": "in", "action": "ACCEPT", "proto": "256"}, "proto", "unknown protocol"),
    ({"type": "in", "action": "ACCEPT", "dport": "22"}, "proto", "required when 'dport'"),
    ({"type": "in", "action": "ACCEPT", "macro": "SSH", "dport": "2222"}, "proto", "also with a macro"),
    ({"type": "in", "action": "ACCEPT", "proto": "icmp", "dport": "22"}, "dport", "does not support ports"),
    ({"type": "in", "action": "ACCEPT", "proto": "tcp", "dport": "99999"}, "dport", "65535"),
    ({"type": "in", "action": "ACCEPT", "proto": "tcp", "sport": "20:10"}, "sport", "backwards"),
    ({"type": "in", "action": "ACCEPT", "source": "10.0.0.300"}, "source", "invalid IP address"),
    ({"type": "in", "action": "ACCEPT", "source": "10.0.0.0/33"}, "source", "invalid IP address"),
    ({"type": "in", "action": "ACCEPT", "source": "10.0.0.1,2001:db8::1"}, "source", "mixed"),
    ({"type": "in", "action": "ACCEPT", "source": "10.0.0.1-10.0.0.9,10.0.1.1"}, "source", "range"),
    ({"type": "in", "action": "ACCEPT", "source": "10.0.0.9-10.0.0.1"}, "source", "invalid address range"),
    ({"type": "in", "action": "ACCEPT", "source": "10.0.0.1,"}, "source", "extraneous commas"),
    ({"type": "in", "action": "ACCEPT", "source": "+nosuchset"}, "source", "no such IP set"),
    ({"type": "in", "action": "ACCEPT", "source": "+bad name"}, "source", "invalid IP set reference"),
    ({"type": "in", "action": "ACCEPT", "source": "+guest/management"}, "source", "no such IP set"),
    ({"type": "in", "action": "ACCEPT", "source": "nosuchalias"}, "source", "no such alias"),
    ({"type": "in", "action": "ACCEPT", "source": "10.0.0.1", "dest": "2001:db8::1"}, "dest", "mix IPv4 and IPv6"),
    ({"type": "in", "action": "ACCEPT", "iface": "eth0"}, "iface", "net0"),
    ({"type": "in", "action": "ACCEPT", "log": "loud"}, "log", "unknown log level"),
    ({"type": "in", "action": "ACCEPT", "proto": "tcp", "icmp-type": "echo-request"}, "proto", "icmp-type"),
    ({"type": "in", "action": "ACCEPT", "proto": "icmp", "icmp-type": "hello"}, "icmp-type", "invalid icmp-type"),
    ({"type": "in", "action": "ACCEPT", "comment": "two\nlines"}, "comment", "one line"),
])
def test_each_mistake_names_its_field(data, field, text):
    found = errors(data)
    assert field in found and any(text in m for m in found[field]), found


def test_level_rules():
    assert "iface" in errors({"type": "in", "action": "ACCEPT", "iface": "net0"}, context("group"))
    assert "type" in errors({"type": "group", "action": "webserver"}, context("group"))
    # Hosts may name any interface and use forward rules; +guest/ references exist only on guests.
    assert clean_rule({"type": "forward", "action": "ACCEPT", "iface": "vmbr0.20"}, context("node"))["iface"] == "vmbr0.20"
    assert "source" in errors({"type": "in", "action": "ACCEPT", "source": "+guest/local"}, context("cluster"))


def test_a_tenant_never_names_another_tenants_objects():
    def tenant_one(kind, scope, name):
        return scope == "guest" or not name.startswith("t") or name.startswith("t1_")

    ctx = context(may_use=tenant_one)
    assert clean_rule({"type": "group", "action": "t1_db"}, ctx)["action"] == "t1_db"
    assert clean_rule({"type": "group", "action": "webserver"}, ctx)["action"] == "webserver"  # shared
    assert "action" in errors({"type": "group", "action": "t2_db"}, ctx)
    assert "source" in errors({"type": "in", "action": "ACCEPT", "source": "+t2_hosts"}, ctx)
    assert "source" in errors({"type": "in", "action": "ACCEPT", "source": "+dc/t2_hosts"}, ctx)


def test_many_mistakes_at_once_are_all_named():
    found = errors({"type": "in", "action": "MAYBE", "proto": "tcp", "dport": "0:99999", "source": "x.y", "log": "?"})
    assert {"action", "dport", "source", "log"} <= set(found)
