"""A guest's firewall file, `/etc/pve/firewall/<vmid>.fw`, as pve-firewall writes and reads it.

The file has sections `[OPTIONS]`, `[ALIASES]`, `[IPSET name] # comment` and `[RULES]`; blank
lines and lines starting with `#` are skipped; section names are case-insensitive. Options are
`key: value` lines (for guests: enable, dhcp, ndp, radv, macfilter, ipfilter and ips take 0 or 1;
log_level_in/out a log level or nothing; policy_in/out ACCEPT, DROP or REJECT; ips_queues `N` or
`N:M`; layer2_protocols a comma list). A rule line is `[|]TYPE [MACRO(]ACTION[)] [-i IFACE]
[-source S] [-dest D] [-p PROTO] [-dport P] [-sport P] [-log LEVEL] [-icmp-type T] [# comment]`,
a leading `|` meaning disabled; group rules are `GROUP name [-i IFACE]`. An IP set entry is
`[!]cidr [# comment]` (`!` = nomatch). pve-firewall skips (and logs) a line it cannot parse and
keeps the rest: so does `parse`, returning the complaints beside the content.

`format(conf)` writes pvesim's state of one guest (`cluster.firewall["guests"][vmid]`) as such a
file; `parse(text)` reads one back into that shape.
"""

from __future__ import annotations

import re

LOG_LEVELS = "emerg|alert|crit|err|warning|notice|info|debug|nolog"
_BOOL_OPTION = re.compile(r"^(enable|dhcp|ndp|radv|macfilter|ipfilter|ips):\s*(0|1)\s*$", re.IGNORECASE)
_LOG_OPTION = re.compile(rf"^(log_level_in|log_level_out):\s*(?:({LOG_LEVELS})\s*)?$", re.IGNORECASE)
_POLICY_OPTION = re.compile(r"^(policy_(?:in|out)):\s*(ACCEPT|DROP|REJECT)\s*$", re.IGNORECASE)
_QUEUES_OPTION = re.compile(r"^(ips_queues):\s*(\d+(?::\d+)?)\s*$", re.IGNORECASE)
_L2_OPTION = re.compile(r"^(layer2_protocols):\s*(\S+(?:\s*,\s*\S+)*)\s*$", re.IGNORECASE)
_SECTION_NAME = re.compile(r"^\[(options|aliases|rules)\]$", re.IGNORECASE)
_IPSET_HEADER = re.compile(r"^\[ipset\s+(\S+)\]\s*(?:#\s*(.*?)\s*)?$", re.IGNORECASE)
_SET_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9\-_]+$")
_RULE_FLAGS = (("-i", "iface"), ("-source", "source"), ("-dest", "dest"), ("-p", "proto"), ("-dport", "dport"),
               ("-sport", "sport"), ("-log", "log"), ("-icmp-type", "icmp-type"))
_FLAG_ALIASES = {"-i": "iface", "-p": "proto", "-proto": "proto", "--proto": "proto", "-dport": "dport",
                 "--dport": "dport", "-sport": "sport", "--sport": "sport", "-source": "source", "--source": "source",
                 "-dest": "dest", "--dest": "dest", "-log": "log", "--log": "log", "-icmp-type": "icmp-type",
                 "--icmp-type": "icmp-type"}
OPTION_ORDER = ("enable", "policy_in", "policy_out", "log_level_in", "log_level_out", "dhcp", "ndp", "radv",
                "macfilter", "ipfilter", "ips", "ips_queues", "layer2_protocols")


def format(conf: dict) -> str:  # noqa: A001 - the module's verb, as in pve-firewall
    """The file for one guest's state; an empty string when there is nothing to write (Proxmox
    then removes the file)."""
    out = []
    options = conf.get("options") or {}
    if options:
        out.append("[OPTIONS]\n\n")
        for key in sorted(options, key=lambda k: (OPTION_ORDER.index(k) if k in OPTION_ORDER else 99, k)):
            out.append(f"{key}: {options[key]}\n")
        out.append("\n")
    aliases = conf.get("aliases") or {}
    if aliases:
        out.append("[ALIASES]\n\n")
        for key in sorted(aliases):
            alias = aliases[key]
            out.append(f"{alias['name']} {alias['cidr']}{_comment(alias.get('comment'))}\n")
        out.append("\n")
    for name in sorted(conf.get("ipsets") or {}):
        ipset = conf["ipsets"][name]
        out.append(f"[IPSET {name}]{_comment(ipset.get('comment'))}\n\n")
        seen = set()
        for entry in sorted(ipset.get("entries") or [], key=lambda e: e["cidr"]):
            if entry["cidr"] in seen:
                continue
            seen.add(entry["cidr"])
            out.append(f"{'!' if entry.get('nomatch') else ''}{entry['cidr']}{_comment(entry.get('comment'))}\n")
        out.append("\n")
    rules = conf.get("rules") or []
    if rules:
        out.append("[RULES]\n\n")
        out.extend(format_rule(rule) + "\n" for rule in rules)
        out.append("\n")
    return "".join(out)


def _comment(text) -> str:
    return f" # {text}" if text and str(text).strip() else ""


def format_rule(rule: dict) -> str:
    line = "|" if str(rule.get("enable", 1)) == "0" else ""
    line += rule["type"].upper()
    line += f" {rule['macro']}({rule['action']})" if rule.get("macro") else f" {rule['action']}"
    if rule.get("iface"):
        line += f" -i {rule['iface']}"
    if rule["type"] != "group":
        for flag, key in _RULE_FLAGS[1:]:
            if rule.get(key) not in (None, ""):
                line += f" {flag} {rule[key]}"
    return line + _comment(rule.get("comment"))


def parse_option(line: str) -> tuple[str, object]:
    """One `[OPTIONS]` line of a guest's file -> (key, value); ValueError when pve-firewall would
    not accept it."""
    if match := _BOOL_OPTION.match(line):
        return match.group(1).lower(), int(match.group(2))
    if match := _LOG_OPTION.match(line):
        return match.group(1).lower(), (match.group(2) or "").lower()
    if match := _POLICY_OPTION.match(line):
        return match.group(1).lower(), match.group(2).upper()
    if match := _QUEUES_OPTION.match(line):
        return match.group(1).lower(), match.group(2)
    if match := _L2_OPTION.match(line):
        return match.group(1).lower(), match.group(2)
    raise ValueError(f"can't parse option '{line}'")


def parse_rule(line: str) -> dict:
    rule: dict = {}
    if "#" in line:
        line, _, comment = line.partition("#")
        if comment.strip():
            rule["comment"] = comment.strip()
    line = line.strip()
    rule["enable"] = 0 if line.startswith("|") else 1
    line = line.lstrip("|")
    words = line.split()
    if len(words) < 2:
        raise ValueError(f"unable to parse rule: {line}")
    rule["type"], action = words[0].lower(), words[1]
    if rule["type"] not in ("in", "out", "forward", "group"):
        raise ValueError(f"unknown rule type '{words[0]}'")
    macro = re.fullmatch(r"(\S+)\((ACCEPT|DROP|REJECT)\)", action)
    if macro and rule["type"] != "group":
        rule["macro"], action = macro.group(1), macro.group(2)
    rule["action"] = action
    rest = words[2:]
    while rest:
        flag = rest[0]
        key = _FLAG_ALIASES.get(flag)
        if key is None or len(rest) < 2 or (rule["type"] == "group" and key != "iface"):
            raise ValueError(f"unable to parse rule parameters: {' '.join(rest)}")
        if key == "log" and rest[1] not in LOG_LEVELS.split("|"):
            raise ValueError(f"unable to parse rule parameters: {' '.join(rest)}")
        rule[key] = rest[1]
        rest = rest[2:]
    return rule


def parse(text: str) -> tuple[dict, list[str]]:
    """The file's content as {"options", "aliases", "ipsets", "rules"}, and the lines skipped
    (`line N: why`), as pve-firewall reads it."""
    conf: dict = {"options": {}, "rules": [], "ipsets": {}, "aliases": {}}
    warnings: list[str] = []
    section, ipset = None, None
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if match := _SECTION_NAME.match(line):
            section, ipset = match.group(1).lower(), None
            continue
        if match := _IPSET_HEADER.match(line):
            name = match.group(1).lower()
            if len(name) > 64 or not _SET_NAME.match(name):
                warnings.append(f"line {number}: invalid ipset name '{name}'")
                section = ipset = None
                continue
            section, ipset = "ipset", name
            conf["ipsets"][name] = {"comment": match.group(2) or "", "entries": []}
            continue
        try:
            if section is None:
                raise ValueError("skip line - no section")
            if section == "options":
                key, value = parse_option(line)
                conf["options"][key] = value
            elif section == "aliases":
                body, _, comment = line.partition("#")
                parts = body.split()
                if len(parts) != 2:
                    raise ValueError(f"can't parse alias '{line}'")
                alias = {"name": parts[0], "cidr": parts[1]}
                if comment.strip():
                    alias["comment"] = comment.strip()
                conf["aliases"][parts[0].lower()] = alias
            elif section == "rules":
                conf["rules"].append(parse_rule(line))
            else:
                body, _, comment = line.partition("#")
                body = body.strip()
                entry = {"cidr": body.lstrip("!").strip()}
                if not entry["cidr"] or " " in entry["cidr"]:
                    raise ValueError(f"can't parse ipset entry '{line}'")
                if body.startswith("!"):
                    entry["nomatch"] = 1
                if comment.strip():
                    entry["comment"] = comment.strip()
                if any(e["cidr"] == entry["cidr"] for e in conf["ipsets"][ipset]["entries"]):
                    raise ValueError(f"duplicate ipset entry for '{entry['cidr']}'")
                conf["ipsets"][ipset]["entries"].append(entry)
        except ValueError as exc:
            warnings.append(f"line {number}: {exc}")
    return conf, warnings
