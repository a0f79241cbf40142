"""install(): load the scenario's [firewall] section into cluster.firewall."""

from __future__ import annotations


from .aliases import _alias
from .levels import guest_conf
from .schema import RULE_KEYS


# ---- scenario ---------------------------------------------------------------------------------

def install(cluster, scenario) -> None:
    """Load the scenario's [firewall] section (options, rules, ipsets, groups, aliases, nodes, guests)."""
    section = scenario.get("firewall", {}) or {}
    fw = {"cluster": {"options": {}, "rules": [], "groups": {}, "ipsets": {}, "aliases": {}}, "nodes": {}, "guests": {}}
    cluster.firewall = fw
    conf = fw["cluster"]
    conf["options"].update(section.get("options", {}))
    for a in section.get("aliases", []):
        conf["aliases"][a["name"].lower()] = _alias(a["name"], a["cidr"], a.get("comment"))
    for s in section.get("ipsets", []):
        conf["ipsets"][s["name"]] = {"comment": s.get("comment", ""), "entries": [_entry(c) for c in s.get("cidrs", [])]}
    for g in section.get("groups", []):
        conf["groups"][g["group"]] = {"comment": g.get("comment", ""), "rules": [_rule(r) for r in g.get("rules", [])]}
    conf["rules"] = [_rule(r) for r in section.get("rules", [])]
    for n in section.get("nodes", []):
        fw["nodes"][n["node"]] = {"options": dict(n.get("options", {})), "rules": [_rule(r) for r in n.get("rules", [])]}
    for g in section.get("guests", []):
        guest = cluster.guests.get(int(g["vmid"]))
        if guest is None:
            continue
        gconf = guest_conf(cluster, guest)
        gconf["options"].update(g.get("options", {}))
        gconf["rules"] = [_rule(r) for r in g.get("rules", [])]
        for s in g.get("ipsets", []):
            gconf["ipsets"][s["name"]] = {"comment": s.get("comment", ""), "entries": [_entry(c) for c in s.get("cidrs", [])]}
        for a in g.get("aliases", []):
            gconf["aliases"][a["name"].lower()] = _alias(a["name"], a["cidr"], a.get("comment"))


def _rule(data: dict) -> dict:
    rule = {k: v for k, v in data.items() if k in RULE_KEYS and k != "pos"}
    rule.setdefault("enable", 1)
    return rule


def _entry(data) -> dict:
    if isinstance(data, str):
        return {"cidr": data}
    out = {"cidr": data["cidr"]}
    if data.get("comment"):
        out["comment"] = data["comment"]
    if data.get("nomatch"):
        out["nomatch"] = 1
    return out
