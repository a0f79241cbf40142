"""Firewall input checked with Proxmox's own syntax (pve-firewall's verify_rule and its formats)
before anything is sent, so a bad value is a field error here, never a Proxmox 400.

`clean_rule(data, context)` returns the rule as Proxmox wants it or raises ValidationError with a
field map. `RuleContext` says where the rule lives (guest, node, datacenter, security group) and
what it may name: Proxmox's macros, the existing groups, IP sets and aliases it can see, and, for
a tenant, which of those are theirs to use.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable
from dataclasses import dataclass, field

from django.core.exceptions import ValidationError

from apps.proxmox.firewall import LOG_LEVELS, POLICIES

NAME_RE = re.compile(r"^[A-Za-z][A-Za-z0-9\-_]+$")
GROUP_MAX, IPSET_MAX, ALIAS_MAX = 18, 64, 64
IFACE_RE = re.compile(r"^[a-zA-Z][a-zA-Z0-9_]{1,20}([:.]\d+)?$")
ALIAS_REF_RE = re.compile(r"^((dc|guest)/)?[A-Za-z][A-Za-z0-9\-_]+$")
GUEST_IFACE_RE = re.compile(r"^net\d+$")
RANGE_RE = re.compile(r"^(\d+):(\d+)$")
# Names from /etc/protocols a rule may use (Proxmox also takes any protocol number 0-255).
PROTOCOLS = {"tcp": 6, "udp": 17, "icmp": 1, "icmpv6": 58, "ipv6-icmp": 58, "igmp": 2, "gre": 47, "esp": 50,
             "ah": 51, "sctp": 132, "udplite": 136, "dccp": 33, "ospf": 89, "vrrp": 112, "ipip": 4, "pim": 103,
             "l2tp": 115, "ipv6": 41}
# Protocols whose packets carry ports (Proxmox's PROTOCOLS_WITH_PORTS, by name or number).
PORT_PROTOCOLS = {"tcp", "udp", "sctp", "udplite", "dccp", "6", "17", "132", "136", "33"}
ICMP_PROTOCOLS = {"icmp", "icmpv6", "ipv6-icmp", "1", "58"}
# Service names from /etc/services that a port field may use, with their number.
SERVICES = {"ftp": 21, "ssh": 22, "telnet": 23, "smtp": 25, "domain": 53, "http": 80, "www": 80, "pop3": 110,
            "ntp": 123, "imap": 143, "snmp": 161, "ldap": 389, "https": 443, "submission": 587, "ldaps": 636,
            "imaps": 993, "pop3s": 995, "mysql": 3306, "rdp": 3389, "postgresql": 5432}
ICMP_TYPES = {"any", "echo-reply", "destination-unreachable", "network-unreachable", "host-unreachable",
              "port-unreachable", "fragmentation-needed", "source-quench", "redirect", "echo-request",
              "router-advertisement", "router-solicitation", "time-exceeded", "ttl-zero-during-transit",
              "parameter-problem", "timestamp-request", "timestamp-reply", "packet-too-big",
              "neighbour-solicitation", "neighbour-advertisement", "neighbor-solicitation", "neighbor-advertisement"}
RULE_TYPES = ("in", "out", "forward", "group")
VERDICTS = ("ACCEPT", "DROP", "REJECT")


@dataclass
class RuleContext:
    """Where a rule lives and what it may name.

    level: guest | node | cluster | group. macros: Proxmox's list (name -> description).
    groups: security groups a `group` rule may use. ipsets/aliases: names as a rule writes them
    (`name`, `dc/name`, `guest/name`) mapped to their scope. `may_use(kind, scope, name)` says
    whether the actor may name it (a tenant: never another tenant's)."""

    level: str
    macros: dict[str, str]
    groups: set[str] = field(default_factory=set)
    ipsets: dict[str, str] = field(default_factory=dict)
    aliases: dict[str, str] = field(default_factory=dict)
    may_use: Callable[[str, str, str], bool] = lambda kind, scope, name: True


def _blank(value) -> bool:
    return value is None or (isinstance(value, str) and value.strip() == "")


def clean_rule(data: dict, context: RuleContext) -> dict:
    """The rule Proxmox will accept, with the macro spelled as Proxmox spells it; ValidationError
    naming every bad field otherwise."""
    errors: dict[str, list[str]] = {}

    def error(name: str, text: str) -> None:
        errors.setdefault(name, []).append(text)

    rule: dict = {}
    for key in ("type", "action", "macro", "proto", "dport", "sport", "source", "dest", "iface", "log",
                "icmp-type", "comment"):
        value = data.get(key)
        if not _blank(value):
            rule[key] = str(value).strip()
    rule["enable"] = 1 if data.get("enable") in (True, 1, "1", "on", "true") else 0

    kind, action = rule.get("type"), rule.get("action")
    if kind is None:
        error("type", "required: in, out or group")
    elif kind not in RULE_TYPES:
        error("type", f"unknown rule type '{kind}': in, out, forward or group")
    elif kind == "group" and context.level == "group":
        error("type", "a security group cannot contain group rules")
    elif kind == "forward" and context.level in ("guest", "group"):
        error("type", "forward rules exist only at the datacenter and node level (nftables firewall)")
    if action is None:
        error("action", "required: ACCEPT, DROP, REJECT, or a security group for a group rule")
    elif kind == "group":
        if not NAME_RE.match(action) or len(action) > GROUP_MAX:
            error("action", f"invalid security group name '{action}'")
        elif action not in context.groups or not context.may_use("group", "dc", action):
            error("action", f"no such security group '{action}'")
    elif kind in RULE_TYPES and action not in VERDICTS:
        error("action", f"unknown action '{action}': ACCEPT, DROP or REJECT")

    if "macro" in rule:
        canonical = {m.lower(): m for m in context.macros}.get(rule["macro"].lower())
        if canonical is None:
            error("macro", f"unknown macro '{rule['macro']}'")
        else:
            rule["macro"] = canonical
        if kind == "group":
            error("macro", "a group rule takes no macro")

    proto = rule.get("proto", "").lower() or None
    if proto is not None:
        rule["proto"] = proto
        if not (proto in PROTOCOLS or (proto.isdigit() and int(proto) <= 255)):
            error("proto", f"unknown protocol '{rule['proto']}'")
    for key in ("dport", "sport"):
        if key in rule:
            problem = port_problem(rule[key])
            if problem:
                error(key, problem)
            elif proto is None:
                error("proto", f"required when '{key}' is set (tcp, udp, ...), also with a macro")
            elif proto is not None and proto not in PORT_PROTOCOLS:
                error(key, f"protocol '{proto}' does not support ports")
    if "icmp-type" in rule:
        if proto not in ICMP_PROTOCOLS:
            error("proto", "icmp-type needs protocol icmp or icmpv6")
        elif rule["icmp-type"] not in ICMP_TYPES and not rule["icmp-type"].isdigit():
            error("icmp-type", f"invalid icmp-type value '{rule['icmp-type']}'")

    versions = {}
    for key in ("source", "dest"):
        if key in rule:
            problem, version = address_problem(rule[key], context, guest_refs=context.level == "guest")
            if problem:
                error(key, problem)
            elif version:
                versions[key] = version
    if len(set(versions.values())) > 1:
        error("dest", "source and destination mix IPv4 and IPv6")
    if proto in ("icmp", "1") and 6 in versions.values():
        error("proto", "icmp is IPv4: use icmpv6 with IPv6 addresses")

    if "iface" in rule:
        iface = rule["iface"]
        if context.level == "group":
            error("iface", "rules in a security group cannot name an interface")
        elif context.level == "guest" and not GUEST_IFACE_RE.match(iface):
            error("iface", "a guest's interface is named by its config key: net0, net1, ...")
        elif not IFACE_RE.match(iface):
            error("iface", f"invalid interface name '{iface}'")
    if "log" in rule and rule["log"] not in LOG_LEVELS:
        error("log", f"unknown log level '{rule['log']}': {', '.join(LOG_LEVELS)}")
    if "comment" in rule and ("\n" in rule["comment"] or "\r" in rule["comment"]):
        error("comment", "one line only (Proxmox stores each rule on one line)")
    if errors:
        raise ValidationError(errors)
    return rule


def port_problem(spec: str) -> str | None:
    """None when `spec` is a Proxmox port list: numbers 0-65535, ranges `a:b` (a <= b), service names,
    comma-separated without empty items."""
    items = spec.split(",")
    if any(i.strip() == "" for i in items):
        return "extraneous commas in list"
    for item in items:
        item = item.strip()
        bounds = RANGE_RE.match(item)
        if bounds:
            low, high = int(bounds.group(1)), int(bounds.group(2))
            if high > 65535 or low > 65535:
                return f"invalid port '{item}': ports go up to 65535"
            if low > high:
                return f"backwards range '{item}' not allowed, did you mean '{high}:{low}'?"
        elif item.isdigit():
            if int(item) > 65535:
                return f"invalid port '{item}': ports go up to 65535"
        elif item.lower() not in SERVICES:
            return f"invalid port '{item}': a number, a range like 8000:8080, or a service name such as ssh"
    return None


def _split_ref(text: str) -> tuple[str | None, str]:
    scope, _, name = text.rpartition("/")
    return (scope or None), name


def address_problem(spec: str, context: RuleContext, *, guest_refs: bool) -> tuple[str | None, int | None]:
    """(problem or None, IP version or None) for a source/destination: an IP, CIDR, range `a-b`,
    comma list of IPs/CIDRs, `+ipset` / `+dc/name` / `+guest/name`, or an alias (`dc/name`)."""
    if len(spec) > 512:
        return "at most 512 characters", None
    if spec.startswith("+"):
        scope, name = _split_ref(spec[1:])
        if scope not in (None, "dc", "guest") or not NAME_RE.match(name) or len(name) > IPSET_MAX:
            return f"invalid IP set reference '{spec}': +name, +dc/name or +guest/name", None
        if scope == "guest" and not guest_refs:
            return "+guest/ references exist only in a guest's rules", None
        found = _lookup(context.ipsets, scope, name)
        if found is None or not context.may_use("ipset", found, name):
            return f"no such IP set '{spec[1:]}'", None
        return None, None
    if ALIAS_REF_RE.match(spec):
        scope, name = _split_ref(spec)
        if len(name) > ALIAS_MAX:
            return f"invalid alias '{spec}'", None
        if scope == "guest" and not guest_refs:
            return "guest/ aliases exist only in a guest's rules", None
        found = _lookup(context.aliases, scope, name.lower())
        if found is None or not context.may_use("alias", found, name):
            return f"no such alias '{spec}'", None
        return None, None
    items = spec.split(",")
    if any(i.strip() == "" for i in items):
        return "extraneous commas in list", None
    versions = set()
    has_range = False
    for item in (i.strip() for i in items):
        if "-" in item and "/" not in item:
            has_range = True
            low, _, high = item.partition("-")
            try:
                a, b = ipaddress.ip_address(low), ipaddress.ip_address(high)
            except ValueError:
                return f"invalid address range '{item}'", None
            if a.version != b.version or int(a) > int(b):
                return f"invalid address range '{item}'", None
            versions.add(a.version)
            continue
        try:
            versions.add(ipaddress.ip_network(item, strict=False).version)
        except ValueError:
            return f"invalid IP address or network '{item}'", None
    if has_range and len(items) > 1:
        return "an address range cannot be part of a list", None
    if len(versions) > 1:
        return "IPv4 and IPv6 addresses mixed in one list", None
    return None, versions.pop() if versions else None


def _lookup(table: dict[str, str], scope: str | None, name: str) -> str | None:
    """The scope (dc | guest) of the named object: a guest's own first, as Proxmox resolves.
    `table` maps a name (aliases: lower case) to its scopes, comma-separated."""
    scopes = table.get(name)
    if scopes is None:
        return None
    options = scopes.split(",")
    if scope is not None:
        return scope if scope in options else None
    return "guest" if "guest" in options else options[0]


def clean_name(value, *, field_name: str, limit: int, prefix: str = "") -> str:
    """A group / IP set / alias name as Proxmox allows it (with the tenant's prefix when given)."""
    text = str(value or "").strip()
    full = f"{prefix}{text}"
    if not text:
        raise ValidationError({field_name: ["required"]})
    if not NAME_RE.match(full):
        raise ValidationError({field_name: ["letters, digits, '-' and '_', starting with a letter"]})
    if len(full) > limit:
        room = limit - len(prefix)
        raise ValidationError({field_name: [f"at most {room} characters"]})
    return full


def clean_cidr(value, *, field_name: str = "cidr", aliases: dict[str, str] | None = None,
               allow_alias: bool = True) -> str:
    """An IP set entry or alias value: an IP or CIDR (v4 or v6), or (IP sets) an alias name."""
    text = str(value or "").strip()
    if not text:
        raise ValidationError({field_name: ["required"]})
    try:
        ipaddress.ip_network(text, strict=False)
        return text
    except ValueError:
        pass
    if allow_alias:
        scope, name = _split_ref(text)
        if NAME_RE.match(name) and _lookup(aliases or {}, scope, name.lower()) is not None:
            return text
        raise ValidationError({field_name: [f"'{text}' is neither an IP address, a network nor a known alias"]})
    raise ValidationError({field_name: [f"'{text}' is not an IP address or network (e.g. 10.0.0.0/24, 2001:db8::/64)"]})


def clean_policy(value, field_name: str) -> str:
    if value not in POLICIES:
        raise ValidationError({field_name: [f"one of {', '.join(POLICIES)}"]})
    return value
