"""The effective firewall of a guest read from Proxmox, and the answer to a packet question.

Reads what Proxmox evaluates for the guest: the datacenter's `enable` gate and its `blacklist` IP set
(only those: a tenant never sees datacenter rules, and those filter the hosts, not guests), the guest's options, rules
and NICs, the security groups its rules pull in, and the IP sets and aliases those rules name.
"""

from __future__ import annotations

from django.core.exceptions import ValidationError

from apps.proxmox import ProxmoxError
from apps.proxmox import firewall as pve_fw
from apps.proxmox import guests as pve_guests

from . import matcher
from .services import Target, _Call, require

NET_KEYS = tuple(f"net{i}" for i in range(32))


def _nics(config: dict) -> tuple[list[str], list[str]]:
    nics = [k for k in NET_KEYS if config.get(k)]
    firewalled = [k for k in nics if "firewall=1" in str(config[k]).replace(" ", "").split(",")]
    return nics, firewalled


def effective_read(*, user, guest) -> tuple[matcher.Effective, matcher.Resolver]:
    """The guest's effective rules (both directions) and a resolver for its IP sets and aliases."""
    target = Target("guest", guest.cluster, guest=guest)
    require(user, target, write=False)
    level = target.level
    with _Call(guest.cluster, f"read the firewall of {target.label}") as client:
        cluster_options, _ = pve_fw.options(client, pve_fw.Level.cluster())
        guest_options, _ = pve_fw.options(client, level)
        rules, _ = pve_fw.rules(client, level)
        config, _ = pve_guests.config(client, guest.ref)
        groups = {}
        for name in {r["action"] for r in rules if r.get("type") == "group"}:
            try:
                groups[name] = pve_fw.rules(client, pve_fw.Level.cluster(), group=name)[0]
            except ProxmoxError:  # a group deleted under the rule: shown as missing
                pass
        used = rules + [m for g in groups.values() for m in g]
        ipsets = {}
        for rule in used:
            for key in ("source", "dest"):
                spec = str(rule.get(key) or "")
                if spec.startswith("+"):
                    scope, _, name = spec[1:].rpartition("/")
                    for candidate in ([scope] if scope else ["guest", "dc"]):
                        where = level if candidate == "guest" else pve_fw.Level.cluster()
                        if (candidate, name) in ipsets:
                            continue
                        try:
                            ipsets[(candidate, name)] = pve_fw.ipset_entries(client, where, name)
                        except ProxmoxError:  # not at this scope: the other one may have it
                            pass
        blacklist = any(s["name"] == "blacklist" for s in pve_fw.ipsets(client, pve_fw.Level.cluster()))
        if blacklist:
            ipsets[("dc", "blacklist")] = pve_fw.ipset_entries(client, pve_fw.Level.cluster(), "blacklist")
        aliases = {("dc", a["name"].lower()): a["cidr"] for a in pve_fw.aliases(client, pve_fw.Level.cluster())}
        aliases.update({("guest", a["name"].lower()): a["cidr"] for a in pve_fw.aliases(client, level)})
    nics, firewalled = _nics(config)
    view = matcher.effective(cluster_options={"enable": cluster_options.get("enable")}, guest_options=guest_options,
                             guest_rules=rules, groups=groups, firewalled_nics=firewalled, all_nics=nics,
                             blacklist=blacklist)
    return view, matcher.Resolver(ipsets=ipsets, aliases=aliases)


def parse_query(data) -> matcher.Query:
    """A question from a form or the API: direction, proto, port, address (and the guest's own)."""
    errors = {}
    direction = (data.get("direction") or "in").strip()
    if direction not in ("in", "out"):
        errors["direction"] = ["in or out"]
    proto = (data.get("proto") or "tcp").strip().lower()
    if proto not in ("tcp", "udp", "icmp", "icmpv6", "sctp"):
        errors["proto"] = ["tcp, udp, icmp, icmpv6 or sctp"]
    port = data.get("port")
    if port in (None, ""):
        port = None
    else:
        try:
            port = int(port)
            if not 0 <= port <= 65535:
                raise ValueError
        except (TypeError, ValueError):
            errors["port"] = ["a port number 0-65535"]
    if port is None and proto in ("tcp", "udp", "sctp") and "port" not in errors:
        errors["port"] = [f"{proto} needs a port"]
    address = (data.get("address") or "").strip()
    local = (data.get("local") or "").strip()
    for key, value in (("address", address), ("local", local)):
        if key == "address" and not value:
            errors[key] = ["required: the other side's IP address"]
            continue
        if value:
            try:
                matcher.ipaddress.ip_address(value)
            except ValueError:
                errors[key] = [f"'{value}' is not an IP address"]
    if errors:
        raise ValidationError(errors)
    return matcher.Query(direction=direction, proto=proto, port=port, remote=address, local=local)


def view_rows(view: matcher.Effective, decision: matcher.Decision | None = None, direction: str = "in") -> list[dict]:
    """The rows of one direction as plain dicts (API and templates), the deciding one flagged."""
    out = []
    for row in view.rows.get(direction, []):
        out.append({"number": row.number, "origin": row.origin, "via": row.via, "enabled": row.enabled,
                    "verdict": row.verdict, "note": row.note, "rule": {k: v for k, v in row.rule.items() if k != "digest"},
                    "decides": bool(decision and decision.row == row.number)})
    return out
