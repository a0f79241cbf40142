"""Rule validation (PVE::Firewall::verify_rule) and the rule routes, registered for every level."""

from __future__ import annotations

import ipaddress
import re
from typing import Callable

from ...errors import ApiError, param_errors
from ...router import api
from .levels import LEVELS, Level, _assert_digest, _split, digest_of
from .schema import (DIGEST, MACROS, OPTIONAL_RULE_KEYS, PORT_PROTOCOLS, POS, PROTOCOLS, RULE_KEYS, SERVICES,
                     _rule_params)


# ---- rule validation (PVE::Firewall::verify_rule) -------------------------------------------

def _verify_rule(cluster, rule: dict, conf: dict, in_group: bool) -> None:
    errors: dict[str, str] = {}
    cluster_conf = cluster.firewall["cluster"]
    kind, action = rule.get("type"), rule.get("action")
    if kind == "group":
        if in_group:
            errors["type"] = "security groups cannot contain group rules"
        elif action not in cluster_conf["groups"]:
            errors["action"] = f"security group '{action}' does not exist"
    elif action not in ("ACCEPT", "DROP", "REJECT"):
        errors["action"] = f"unknown action '{action}'"
    macro = rule.get("macro")
    if macro:
        canonical = next((m for m in MACROS if m.lower() == macro.lower()), None)
        if canonical is None:
            errors["macro"] = f"unknown macro '{macro}'"
        else:
            rule["macro"] = canonical
    proto = rule.get("proto")
    if proto and proto.lower() not in PROTOCOLS and not (proto.isdigit() and int(proto) <= 255):
        errors["proto"] = f"unknown protocol '{proto}'"
    for key in ("dport", "sport"):
        if rule.get(key):
            bad = _check_ports(rule[key])
            if bad:
                errors[key] = bad
            elif not proto:
                errors["proto"] = f"missing property - '{key}' requires this property"
            elif proto.lower() not in PORT_PROTOCOLS:
                errors[key] = f"protocol '{proto}' does not support ports"
    if rule.get("icmp-type") and (proto or "").lower() not in ("icmp", "icmpv6", "ipv6-icmp", "1", "58"):
        errors["proto"] = "missing property - 'icmp-type' requires this property"
    for key in ("source", "dest"):
        if rule.get(key):
            bad = _check_address(cluster, rule[key], conf)
            if bad:
                errors[key] = bad
    if errors:
        param_errors(errors)


def _check_ports(spec: str) -> str | None:
    """PVE's parse_port_name_number_or_range: numbers 0-65535, ranges `a:b` (not backwards), or a
    service name; no empty list items."""
    parts = spec.split(",")
    if any(p == "" for p in parts):
        return "extraneous commas in list"
    for part in parts:
        low, sep, high = part.partition(":")
        if sep and low.isdigit() and high.isdigit():
            for port in (low, high):
                if int(port) > 65535:
                    return f"invalid port '{port}'"
            if int(low) > int(high):
                return f"backwards range '{part}' not allowed, did you mean '{high}:{low}'?"
        elif part.isdigit():
            if int(part) > 65535:
                return f"invalid port '{part}'"
        elif part.lower() not in SERVICES:
            return f"invalid port '{part}'"
    return None


def _check_address(cluster, spec: str, conf: dict) -> str | None:
    """IP, CIDR, range a-b, comma list of those, +ipset ([dc/|guest/]name) or an alias name."""
    if spec.startswith("+"):
        scope, name = _scoped(spec[1:])
        if not _find_ipset(cluster, conf, scope, name):
            return f"no such ipset '{spec[1:]}'"
        return None
    for item in spec.split(","):
        try:
            if "-" in item and "/" not in item:
                a, b = item.split("-", 1)
                ipaddress.ip_address(a), ipaddress.ip_address(b)
            else:
                ipaddress.ip_network(item, strict=False)
            continue
        except ValueError:
            pass
        if re.fullmatch(r"((dc|guest)/)?[A-Za-z][A-Za-z0-9\-_]+", item) and "," not in spec:
            scope, name = _scoped(item)
            if _find_alias(cluster, conf, scope, name) is None:
                return f"no such alias '{item}'"
            continue
        return f"invalid address '{item}'"
    return None


def _scoped(ref: str) -> tuple[str | None, str]:
    scope, _, name = ref.rpartition("/")
    return (scope or None), name


def _find_ipset(cluster, conf: dict, scope: str | None, name: str) -> bool:
    if scope in (None, "guest") and name in conf.get("ipsets", {}) and conf is not cluster.firewall["cluster"]:
        return True
    return scope in (None, "dc") and name in cluster.firewall["cluster"]["ipsets"]


def _find_alias(cluster, conf: dict, scope: str | None, name: str):
    if scope in (None, "guest") and conf is not cluster.firewall["cluster"] and name.lower() in conf.get("aliases", {}):
        return conf["aliases"][name.lower()]
    if scope in (None, "dc"):
        return cluster.firewall["cluster"]["aliases"].get(name.lower())
    return None


def _rule_out(rule: dict, pos: int, digest: str) -> dict:
    out = {k: rule[k] for k in RULE_KEYS if k in rule and k != "pos"}
    out["pos"] = pos
    out["digest"] = digest
    version = _ipversion(rule)
    if version:
        out["ipversion"] = version
    return out


def _ipversion(rule: dict) -> int | None:
    for key in ("source", "dest"):
        first = str(rule.get(key, "")).split(",")[0].split("-")[0]
        try:
            return ipaddress.ip_network(first, strict=False).version
        except ValueError:
            continue
    return None


def _copy_rule(rule: dict, p: dict) -> None:
    for key in RULE_KEYS:
        if key == "pos" or key not in p:
            continue
        if p[key] == "" and key in OPTIONAL_RULE_KEYS:
            rule.pop(key, None)
        else:
            rule[key] = p[key]


# ---- rule endpoints, registered for every level and for security groups ---------------------

def _register_rules(prefix: str, path_params: dict, proxyto, locate: Callable, audit: Callable, modify: Callable,
                    in_group: bool = False, list_path: str | None = None):
    """locate(cluster, p) -> (rules list, file conf)."""
    list_path = list_path or f"{prefix}/rules"
    item_path = f"{list_path}/{{pos}}"

    if not in_group:  # a group's rule list is GET /cluster/firewall/groups/{group}, registered below
        @api.get(list_path, params=dict(path_params), proxyto=proxyto)
        def list_rules(ctx, p):
            audit(ctx, p)
            with ctx.cluster.lock:
                rules, conf = locate(ctx.cluster, p)
                digest = digest_of(conf)
                return [_rule_out(r, i, digest) for i, r in enumerate(rules)]

    @api.post(list_path, params={**path_params, **_rule_params(create=True)}, proxyto=proxyto)
    def create_rule(ctx, p):
        """New rules go on top unless pos is given; a rule without enable is disabled."""
        modify(ctx, p)
        with ctx.cluster.lock:
            rules, conf = locate(ctx.cluster, p)
            _assert_digest(conf, p)
            rule: dict = {}
            _copy_rule(rule, p)
            _verify_rule(ctx.cluster, rule, conf, in_group)
            rule.setdefault("enable", 0)
            pos = p.get("pos")
            if pos is None:
                rules.insert(0, rule)
            else:
                rules.insert(min(pos, len(rules)), rule)
        return None

    pos_params = {**path_params, "pos": POS}

    @api.get(item_path, params=dict(pos_params), proxyto=proxyto)
    def read_rule(ctx, p):
        audit(ctx, p)
        with ctx.cluster.lock:
            rules, conf = locate(ctx.cluster, p)
            return _rule_out(_at(rules, p["pos"]), p["pos"], digest_of(conf))

    @api.put(item_path, params={**path_params, **_rule_params(create=False)}, proxyto=proxyto)
    def update_rule(ctx, p):
        """moveto places the rule before the one now at that index (PVE's drag-and-drop semantics)."""
        modify(ctx, p)
        with ctx.cluster.lock:
            rules, conf = locate(ctx.cluster, p)
            _assert_digest(conf, p)
            rule = _at(rules, p["pos"])
            moveto = p.get("moveto")
            if moveto is not None and moveto != p["pos"]:
                reordered = []
                for i, other in enumerate(rules):
                    if i == p["pos"]:
                        continue
                    if i == moveto:
                        reordered.append(rule)
                    reordered.append(other)
                if moveto >= len(rules):
                    reordered.append(rule)
                rules[:] = reordered
                return None
            updated = dict(rule)
            for key in _split(p.get("delete")):
                if key not in OPTIONAL_RULE_KEYS:
                    param_errors({"delete": f"unable to delete required property '{key}'"})
                updated.pop(key, None)
            _copy_rule(updated, p)
            _verify_rule(ctx.cluster, updated, conf, in_group)
            rule.clear()
            rule.update(updated)
        return None

    @api.delete(item_path, params={**pos_params, "digest": DIGEST}, proxyto=proxyto)
    def delete_rule(ctx, p):
        modify(ctx, p)
        with ctx.cluster.lock:
            rules, conf = locate(ctx.cluster, p)
            _assert_digest(conf, p)
            _at(rules, p["pos"])
            del rules[p["pos"]]
        return None


def _at(rules: list, pos: int) -> dict:
    if pos >= len(rules):
        raise ApiError(500, f"no rule at position {pos}")
    return rules[pos]


def _level_locator(level: Level):
    def locate(cluster, p):
        conf = level.conf(cluster, p)
        return conf["rules"], conf
    return locate


for _level in LEVELS:
    _register_rules(_level.prefix, _level.path_params, _level.proxyto, _level_locator(_level), _level.audit, _level.modify)
