"""Firewall: cluster, node and guest options, rules, security groups, IP sets, aliases (pve-semantics §7).

State lives in `cluster.firewall` (plain dicts, one per PVE config file):
  cluster: {"options", "rules", "groups": {name: {"comment", "rules"}}, "ipsets": {name: {"comment", "entries"}},
            "aliases": {lower name: {"name", "cidr", "comment"}}}
  nodes:   {node: {"options", "rules"}}
  guests:  {vmid: {"options", "rules", "ipsets", "aliases", "guest": <Guest it belongs to>}}
All calls are synchronous and return null on writes. `digest` is the SHA1 of the file's content;
a stale digest is refused like PVE does. The IPS options `ips`/`ips_queues` are not in the API schema,
so validation rejects them (they only exist in the .fw file).
"""

from __future__ import annotations

import hashlib
import ipaddress
import json
import re
import time
from typing import Callable

from ..errors import ApiError, param_errors
from ..params import P, PropString
from ..router import Result, api

LOG_LEVELS = ["emerg", "alert", "crit", "err", "warning", "notice", "info", "debug", "nolog"]
POLICIES = ["ACCEPT", "REJECT", "DROP"]
NAME = dict(min_length=2, max_length=64, pattern=r"[A-Za-z][A-Za-z0-9\-\_]+")
GROUP = P.string(optional=False, min_length=2, max_length=18, pattern=r"[A-Za-z][A-Za-z0-9\-\_]+")
POS = P.integer(minimum=0)
DIGEST = P.digest()

# A realistic subset of /usr/share/perl5/PVE/Firewall.pm's macros: name -> description.
MACROS = {
    "Amanda": "Amanda Backup", "Auth": "Auth (identd) traffic", "BGP": "Border Gateway Protocol traffic",
    "BitTorrent": "BitTorrent traffic for BitTorrent 3.1 and earlier", "Ceph": "Ceph Storage Cluster traffic (Ceph Monitors, OSD & MDS Daemons)",
    "CVS": "Concurrent Versions System pserver traffic", "DHCPfwd": "Forwarded DHCP traffic",
    "DHCPv6": "DHCPv6 traffic", "DNS": "Domain Name System traffic (upd and tcp)", "FTP": "File Transfer Protocol",
    "Git": "Git distributed revision control traffic", "GRE": "Generic Routing Encapsulation tunneling protocol",
    "HKP": "OpenPGP HTTP key server protocol traffic", "HTTP": "Hypertext Transfer Protocol (WWW)",
    "HTTPS": "Hypertext Transfer Protocol (WWW) over SSL", "ICMPV6": "ICMPv6 traffic (required for IPv6)",
    "IMAP": "Internet Message Access Protocol", "IMAPS": "Internet Message Access Protocol over SSL",
    "IPsec": "IPsec traffic", "IPsecah": "IPsec authentication (AH) traffic", "IPsecnat": "IPsec traffic and Nat-Traversal",
    "IRC": "Internet Relay Chat traffic", "Jetdirect": "HP Jetdirect printing", "L2TP": "Layer 2 Tunneling Protocol traffic",
    "LDAP": "Lightweight Directory Access Protocol traffic", "LDAPS": "Secure Lightweight Directory Access Protocol traffic",
    "MDNS": "Multicast DNS", "MSSQL": "Microsoft SQL Server", "Mail": "Mail traffic (SMTP, SMTPS, Submission)",
    "Munin": "Munin networked resource monitoring traffic", "MySQL": "MySQL server", "NNTP": "NNTP traffic (Usenet).",
    "NTP": "Network Time Protocol (ntpd)", "NeighborDiscovery": "IPv6 neighbor solicitation, neighbor and router advertisement",
    "OSPF": "OSPF multicast traffic", "OpenVPN": "OpenVPN traffic", "PMG": "Proxmox Mail Gateway web interface",
    "POP3": "POP3 traffic", "POP3S": "Encrypted POP3 traffic", "PPtP": "Point-to-Point Tunneling Protocol",
    "Ping": "ICMP echo request", "PostgreSQL": "PostgreSQL server", "Printer": "Line Printer protocol printing",
    "RDP": "Microsoft Remote Desktop Protocol traffic", "RIP": "Routing Information Protocol (bidirectional)",
    "Rsync": "Rsync server", "SMB": "Microsoft SMB traffic", "SMTP": "Simple Mail Transfer Protocol",
    "SMTPS": "Encrypted Simple Mail Transfer Protocol", "SNMP": "Simple Network Management Protocol",
    "SPAMD": "Spam Assassin SPAMD traffic", "SSH": "Secure shell traffic", "SVN": "Subversion server (svnserve)",
    "Squid": "Squid web proxy traffic", "Submission": "Mail message submission traffic", "Syslog": "Syslog protocol (RFC 5424) traffic",
    "TFTP": "Trivial File Transfer Protocol traffic", "Telnet": "Telnet traffic", "Time": "RFC 868 Time protocol",
    "Trcrt": "Traceroute (for up to 30 hops) traffic", "VNC": "VNC traffic for VNC display's 0 - 99",
    "Web": "WWW traffic (HTTP and HTTPS)", "Webmin": "Webmin traffic", "Whois": "Whois (nicname, RFC 3912) traffic",
}
PROTOCOLS = {"tcp", "udp", "icmp", "icmpv6", "ipv6-icmp", "igmp", "gre", "esp", "ah", "sctp", "udplite", "dccp",
             "ospf", "vrrp", "ipip", "ipencap", "l2tp", "pim", "egp", "ipv6", "rsvp", "all"}
PORT_PROTOCOLS = {"tcp", "udp", "sctp", "udplite", "dccp", "6", "17", "132", "136", "33"}
SERVICES = {"ftp": 21, "ssh": 22, "telnet": 23, "smtp": 25, "domain": 53, "http": 80, "pop3": 110, "ntp": 123,
            "imap": 143, "snmp": 161, "ldap": 389, "https": 443, "submission": 587, "ldaps": 636, "imaps": 993,
            "pop3s": 995, "mysql": 3306, "postgresql": 5432, "rdp": 3389, "www": 80}
RULE_KEYS = ["type", "action", "pos", "macro", "proto", "dport", "sport", "source", "dest", "iface", "log",
             "icmp-type", "enable", "comment"]
OPTIONAL_RULE_KEYS = {"macro", "proto", "dport", "sport", "source", "dest", "iface", "log", "icmp-type", "comment"}
STALE = "detected modified configuration - file changed by other user? Try again."

LOG_RATELIMIT = PropString({"enable": P.boolean(optional=False), "burst": P.integer(minimum=0),
                            "rate": P.string(pattern=r"[1-9][0-9]*\/(second|minute|hour|day)")}, default_key="enable")
CLUSTER_OPTIONS = {
    "enable": P.integer(minimum=0, default=0), "policy_in": P.enum(POLICIES), "policy_out": P.enum(POLICIES),
    "policy_forward": P.enum(["ACCEPT", "DROP"]), "ebtables": P.boolean(default=1),
    "log_ratelimit": P.string(prop=LOG_RATELIMIT),
}
NODE_OPTIONS = {
    "enable": P.boolean(default=1), "log_level_in": P.enum(LOG_LEVELS), "log_level_out": P.enum(LOG_LEVELS),
    "log_level_forward": P.enum(LOG_LEVELS), "log_nf_conntrack": P.boolean(default=0), "ndp": P.boolean(default=1),
    "nf_conntrack_allow_invalid": P.boolean(default=0), "nf_conntrack_helpers": P.string(format="pve-fw-conntrack-helper"),
    "nf_conntrack_max": P.integer(minimum=32768), "nf_conntrack_tcp_timeout_established": P.integer(minimum=7875),
    "nf_conntrack_tcp_timeout_syn_recv": P.integer(minimum=30, maximum=60), "nftables": P.boolean(default=0),
    "nosmurfs": P.boolean(), "protection_synflood": P.boolean(default=0), "protection_synflood_burst": P.integer(),
    "protection_synflood_rate": P.integer(), "smurf_log_level": P.enum(LOG_LEVELS),
    "tcp_flags_log_level": P.enum(LOG_LEVELS), "tcpflags": P.boolean(default=0),
}
GUEST_OPTIONS = {
    "enable": P.boolean(default=0), "dhcp": P.boolean(default=0), "ipfilter": P.boolean(), "macfilter": P.boolean(default=1),
    "ndp": P.boolean(default=1), "radv": P.boolean(), "log_level_in": P.enum(LOG_LEVELS), "log_level_out": P.enum(LOG_LEVELS),
    "policy_in": P.enum(POLICIES), "policy_out": P.enum(POLICIES),
}


def _rule_params(create: bool) -> dict:
    out = {
        "type": P.enum(["in", "out", "forward", "group"], optional=not create),
        "action": P.string(optional=not create, min_length=2, max_length=20, pattern=r"[A-Za-z][A-Za-z0-9\-\_]+"),
        "pos": POS, "digest": DIGEST, "macro": P.string(max_length=128),
        "proto": P.string(format="pve-fw-protocol-spec"), "dport": P.string(format="pve-fw-dport-spec"),
        "sport": P.string(format="pve-fw-sport-spec"),
        "source": P.string(format="pve-fw-addr-spec", max_length=512), "dest": P.string(format="pve-fw-addr-spec", max_length=512),
        "iface": P.string(format="pve-iface", min_length=2, max_length=20), "log": P.enum(LOG_LEVELS),
        "icmp-type": P.string(format="pve-fw-icmp-type-spec"), "enable": P.integer(minimum=0), "comment": P.string(),
    }
    if not create:
        out["moveto"] = P.integer(minimum=0)
        out["delete"] = P.string(format="pve-configid-list")
    return out


# ---- levels: which config file a URL addresses, and who may read/write it -----------------------

class Level:
    """One firewall config file: the cluster's, a node's, or a guest's (qemu or lxc)."""

    def __init__(self, kind: str):
        self.kind = kind
        if kind == "cluster":
            self.prefix, self.path_params, self.proxyto = "/cluster/firewall", {}, None
        elif kind == "node":
            self.prefix, self.path_params, self.proxyto = "/nodes/{node}/firewall", {"node": P.node()}, "node"
        else:
            self.prefix = f"/nodes/{{node}}/{kind}/{{vmid}}/firewall"
            self.path_params, self.proxyto = {"node": P.node(), "vmid": P.vmid()}, "node"

    def acl(self, p) -> tuple[str, str, str]:
        """(path, read privilege, write privilege) as the schema's permissions say."""
        if self.kind == "cluster":
            return "/", "Sys.Audit", "Sys.Modify"
        if self.kind == "node":
            return f"/nodes/{p['node']}", "Sys.Audit", "Sys.Modify"
        return f"/vms/{p['vmid']}", "VM.Audit", "VM.Config.Network"

    def audit(self, ctx, p) -> None:
        path, read, _ = self.acl(p)
        ctx.check(path, read)

    def modify(self, ctx, p) -> None:
        path, _, write = self.acl(p)
        ctx.check(path, write)

    def conf(self, cluster, p) -> dict:
        fw = cluster.firewall
        if self.kind == "cluster":
            return fw["cluster"]
        if self.kind == "node":
            cluster.node(p["node"])
            return fw["nodes"].setdefault(p["node"], {"options": {}, "rules": []})
        guest = cluster.guest(p["vmid"], self.kind, p["node"])  # 500 `Configuration file ... does not exist`
        return guest_conf(cluster, guest)


def guest_conf(cluster, guest) -> dict:
    """The guest's .fw content; a guest re-created under the same VMID starts empty."""
    conf = cluster.firewall["guests"].get(guest.vmid)
    if conf is None or conf["guest"] is not guest:
        conf = {"options": {}, "rules": [], "ipsets": {}, "aliases": {}, "guest": guest}
        cluster.firewall["guests"][guest.vmid] = conf
    return conf


LEVELS = [Level("cluster"), Level("node"), Level("qemu"), Level("lxc")]
GUEST_LEVELS = LEVELS[2:]


def digest_of(conf: dict) -> str:
    data = {k: v for k, v in conf.items() if k != "guest"}
    return hashlib.sha1(json.dumps(data, sort_keys=True, default=sorted).encode()).hexdigest()


def _assert_digest(conf: dict, p: dict) -> None:
    if p.get("digest") and p["digest"] != digest_of(conf):
        raise ApiError(500, STALE)


def _split(text: str | None) -> list[str]:
    return [x for x in re.split(r"[,;\s]+", text or "") if x]


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
    for part in spec.split(","):
        for port in part.split(":", 1):
            if port.isdigit() and 0 < int(port) <= 65535 or port.lower() in SERVICES:
                continue
            return f"invalid port '{port}'"
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


# ---- security groups ----------------------------------------------------------------------

def _group_rules(cluster, p):
    conf = cluster.firewall["cluster"]
    group = conf["groups"].get(p["group"])
    if group is None:
        raise ApiError(500, f"no such security group '{p['group']}'")
    return group["rules"], conf


def _cluster_audit(ctx, p):
    ctx.check("/", "Sys.Audit")


def _cluster_modify(ctx, p):
    ctx.check("/", "Sys.Modify")


_register_rules("/cluster/firewall/groups/{group}", {"group": GROUP}, None, _group_rules, _cluster_audit,
                _cluster_modify, in_group=True, list_path="/cluster/firewall/groups/{group}")


@api.get("/cluster/firewall/groups/{group}", params={"group": GROUP})
def list_group_rules(ctx, p):
    ctx.check("/", "Sys.Audit")
    with ctx.cluster.lock:
        rules, conf = _group_rules(ctx.cluster, p)
        digest = digest_of(conf)
        return [_rule_out(r, i, digest) for i, r in enumerate(rules)]


@api.get("/cluster/firewall/groups", params={})
def list_groups(ctx, p):
    with ctx.cluster.lock:
        conf = ctx.cluster.firewall["cluster"]
        digest = digest_of(conf)
        return [{"group": name, "digest": digest, **({"comment": g["comment"]} if g.get("comment") else {})}
                for name, g in sorted(conf["groups"].items())]


@api.post("/cluster/firewall/groups", params={
    "group": GROUP, "comment": P.string(), "digest": DIGEST,
    "rename": P.string(min_length=2, max_length=18, pattern=r"[A-Za-z][A-Za-z0-9\-\_]+"),
})
def create_group(ctx, p):
    """Create a group, or rename `rename` to `group` (rules referencing it follow)."""
    ctx.check("/", "Sys.Modify")
    cluster = ctx.cluster
    with cluster.lock:
        conf = cluster.firewall["cluster"]
        _assert_digest(conf, p)
        name, old = p["group"], p.get("rename")
        if old:
            if old not in conf["groups"]:
                param_errors({"group": f"Security group '{old}' does not exist"})
            if name.lower() in (g.lower() for g in conf["groups"]) and name != old:
                param_errors({"group": f"Security group '{name}' does already exist"})
            group = conf["groups"].pop(old)
            if "comment" in p:
                group["comment"] = p["comment"]
            conf["groups"][name] = group
            for rule in _all_rules(cluster):
                if rule.get("type") == "group" and rule.get("action") == old:
                    rule["action"] = name
            return None
        for existing in conf["groups"]:
            if existing.lower() == name.lower():
                param_errors({"group": f"Security group '{existing}' already exists"})
        conf["groups"][name] = {"comment": p.get("comment", ""), "rules": []}
    return None


@api.delete("/cluster/firewall/groups/{group}", params={"group": GROUP})
def delete_group(ctx, p):
    ctx.check("/", "Sys.Modify")
    with ctx.cluster.lock:
        groups = ctx.cluster.firewall["cluster"]["groups"]
        group = groups.get(p["group"])
        if group is None:
            return None
        if group["rules"]:
            raise ApiError(500, f"Security group '{p['group']}' is not empty")
        if any(r.get("type") == "group" and r.get("action") == p["group"] for r in _all_rules(ctx.cluster)):
            raise ApiError(500, f"Security group '{p['group']}' is still in use")
        del groups[p["group"]]
    return None


def _all_rules(cluster):
    fw = cluster.firewall
    yield from fw["cluster"]["rules"]
    for node in fw["nodes"].values():
        yield from node["rules"]
    for vmid, conf in fw["guests"].items():
        if cluster.guests.get(vmid) is conf["guest"]:  # not a destroyed guest's leftovers
            yield from conf["rules"]


# ---- options --------------------------------------------------------------------------------

def _register_options(level: Level, option_params: dict):
    path = f"{level.prefix}/options"

    @api.get(path, params=dict(level.path_params), proxyto=level.proxyto)
    def get_options(ctx, p):
        level.audit(ctx, p)
        with ctx.cluster.lock:
            conf = level.conf(ctx.cluster, p)
            return {**conf["options"], "digest": digest_of(conf)}

    @api.put(path, params={**level.path_params, **option_params, "delete": P.string(format="pve-configid-list"),
                           "digest": DIGEST}, proxyto=level.proxyto)
    def set_options(ctx, p):
        level.modify(ctx, p)
        with ctx.cluster.lock:
            conf = level.conf(ctx.cluster, p)
            _assert_digest(conf, p)
            deletes = _split(p.get("delete"))
            for key in deletes:
                if key not in option_params:
                    param_errors({"delete": f"no such option '{key}'"})
            for key in deletes:
                conf["options"].pop(key, None)
            conf["options"].update({k: v for k, v in p.items() if k in option_params})
        return None


for _level, _opts in zip(LEVELS, (CLUSTER_OPTIONS, NODE_OPTIONS, GUEST_OPTIONS, GUEST_OPTIONS)):
    _register_options(_level, _opts)


# ---- IP sets ----------------------------------------------------------------------------------

IPSET_NAME = P.string(optional=False, **NAME)
CIDR = P.string(optional=False, format="IPorCIDRorAlias")


def _ipset_levels():
    """(prefix, path params, proxyto, conf getter, audit, modify) for the cluster and both guest types."""
    yield Level("cluster")
    yield from GUEST_LEVELS


def _check_cidr(cluster, conf: dict, cidr: str) -> None:
    try:
        ipaddress.ip_network(cidr, strict=False)
        return
    except ValueError:
        pass
    scope, name = _scoped(cidr)
    if not re.fullmatch(r"[A-Za-z][A-Za-z0-9\-_]+", name) or _find_alias(cluster, conf, scope, name) is None:
        param_errors({"cidr": f"no such alias '{cidr}'"})


def _register_ipsets(level: Level):
    base = f"{level.prefix}/ipset"
    pp = level.path_params

    def ipset(conf, name):
        found = conf["ipsets"].get(name)
        if found is None:
            raise ApiError(500, f"no such IPSet '{name}'")
        return found

    @api.get(base, params=dict(pp), proxyto=level.proxyto)
    def list_ipsets(ctx, p):
        level.audit(ctx, p)
        with ctx.cluster.lock:
            conf = level.conf(ctx.cluster, p)
            digest = digest_of(conf)
            return [{"name": n, "digest": digest, **({"comment": s["comment"]} if s.get("comment") else {})}
                    for n, s in sorted(conf["ipsets"].items())]

    @api.post(base, params={**pp, "name": IPSET_NAME, "comment": P.string(), "digest": DIGEST,
                            "rename": P.string(**NAME)}, proxyto=level.proxyto)
    def create_ipset(ctx, p):
        level.modify(ctx, p)
        with ctx.cluster.lock:
            conf = level.conf(ctx.cluster, p)
            _assert_digest(conf, p)
            name, old = p["name"], p.get("rename")
            if old:
                if old not in conf["ipsets"]:
                    param_errors({"name": f"IPSet '{old}' does not exist"})
                if name in conf["ipsets"] and name != old:
                    param_errors({"name": f"IPSet '{name}' does already exist"})
                entry = conf["ipsets"].pop(old)
                if "comment" in p:
                    entry["comment"] = p["comment"]
                conf["ipsets"][name] = entry
                return None
            if name in conf["ipsets"]:
                param_errors({"name": f"IPSet '{name}' already exists"})
            conf["ipsets"][name] = {"comment": p.get("comment", ""), "entries": []}
        return None

    @api.get(f"{base}/{{name}}", params={**pp, "name": IPSET_NAME}, proxyto=level.proxyto)
    def list_entries(ctx, p):
        level.audit(ctx, p)
        with ctx.cluster.lock:
            conf = level.conf(ctx.cluster, p)
            digest = digest_of(conf)
            return [{**e, "digest": digest} for e in ipset(conf, p["name"])["entries"]]

    @api.post(f"{base}/{{name}}", params={**pp, "name": IPSET_NAME, "cidr": CIDR, "comment": P.string(),
                                          "nomatch": P.boolean()}, proxyto=level.proxyto)
    def add_entry(ctx, p):
        level.modify(ctx, p)
        with ctx.cluster.lock:
            conf = level.conf(ctx.cluster, p)
            entries = ipset(conf, p["name"])["entries"]
            _check_cidr(ctx.cluster, conf, p["cidr"])
            if any(e["cidr"] == p["cidr"] for e in entries):
                param_errors({"cidr": f"address '{p['cidr']}' already exists"})
            entry = {"cidr": p["cidr"]}
            if p.get("comment"):
                entry["comment"] = p["comment"]
            if p.get("nomatch"):
                entry["nomatch"] = 1
            entries.append(entry)
        return None

    entry_params = {**pp, "name": IPSET_NAME, "cidr": CIDR}

    def find_entry(conf, p):
        for e in ipset(conf, p["name"])["entries"]:
            if e["cidr"] == p["cidr"]:
                return e
        raise ApiError(500, "no such IP/Network")

    @api.get(f"{base}/{{name}}/{{cidr}}", params=dict(entry_params), proxyto=level.proxyto, greedy="cidr")
    def read_entry(ctx, p):
        level.audit(ctx, p)
        with ctx.cluster.lock:
            conf = level.conf(ctx.cluster, p)
            return {**find_entry(conf, p), "digest": digest_of(conf)}

    @api.put(f"{base}/{{name}}/{{cidr}}", params={**entry_params, "comment": P.string(), "nomatch": P.boolean(),
                                                  "digest": DIGEST}, proxyto=level.proxyto, greedy="cidr")
    def update_entry(ctx, p):
        level.modify(ctx, p)
        with ctx.cluster.lock:
            conf = level.conf(ctx.cluster, p)
            _assert_digest(conf, p)
            entry = find_entry(conf, p)
            if "comment" in p:
                if p["comment"]:
                    entry["comment"] = p["comment"]
                else:
                    entry.pop("comment", None)
            if "nomatch" in p:
                if p["nomatch"]:
                    entry["nomatch"] = 1
                else:
                    entry.pop("nomatch", None)
        return None

    @api.delete(f"{base}/{{name}}/{{cidr}}", params={**entry_params, "digest": DIGEST}, proxyto=level.proxyto,
                greedy="cidr")
    def delete_entry(ctx, p):
        level.modify(ctx, p)
        with ctx.cluster.lock:
            conf = level.conf(ctx.cluster, p)
            _assert_digest(conf, p)
            entries = ipset(conf, p["name"])["entries"]
            entries[:] = [e for e in entries if e["cidr"] != p["cidr"]]
        return None

    @api.delete(f"{base}/{{name}}", params={**pp, "name": IPSET_NAME, "force": P.boolean()}, proxyto=level.proxyto)
    def delete_ipset(ctx, p):
        level.modify(ctx, p)
        with ctx.cluster.lock:
            conf = level.conf(ctx.cluster, p)
            found = conf["ipsets"].get(p["name"])
            if found is None:
                return None
            if found["entries"] and not p.get("force"):
                raise ApiError(500, f"IPSet '{p['name']}' is not empty")
            del conf["ipsets"][p["name"]]
        return None


for _level in _ipset_levels():
    _register_ipsets(_level)


# ---- aliases ----------------------------------------------------------------------------------

def _register_aliases(level: Level):
    base = f"{level.prefix}/aliases"
    pp = level.path_params
    alias_name = P.string(optional=False, **NAME)

    def find(conf, name):
        found = conf["aliases"].get(name.lower())
        if found is None:
            raise ApiError(500, f"no such alias '{name}'")
        return found

    @api.get(base, params=dict(pp), proxyto=level.proxyto)
    def list_aliases(ctx, p):
        level.audit(ctx, p)
        with ctx.cluster.lock:
            conf = level.conf(ctx.cluster, p)
            digest = digest_of(conf)
            return [{**a, "digest": digest} for _, a in sorted(conf["aliases"].items())]

    @api.post(base, params={**pp, "name": alias_name, "cidr": P.string(optional=False, format="IPorCIDR"),
                            "comment": P.string()}, proxyto=level.proxyto)
    def create_alias(ctx, p):
        level.modify(ctx, p)
        with ctx.cluster.lock:
            conf = level.conf(ctx.cluster, p)
            if p["name"].lower() in conf["aliases"]:
                param_errors({"name": f"alias '{p['name']}' already exists"})
            conf["aliases"][p["name"].lower()] = _alias(p["name"], p["cidr"], p.get("comment"))
        return None

    @api.get(f"{base}/{{name}}", params={**pp, "name": alias_name}, proxyto=level.proxyto)
    def read_alias(ctx, p):
        level.audit(ctx, p)
        with ctx.cluster.lock:
            conf = level.conf(ctx.cluster, p)
            return {**find(conf, p["name"]), "digest": digest_of(conf)}

    @api.put(f"{base}/{{name}}", params={**pp, "name": alias_name, "cidr": P.string(optional=False, format="IPorCIDR"),
                                         "comment": P.string(), "digest": DIGEST, "rename": P.string(**NAME)},
             proxyto=level.proxyto)
    def update_alias(ctx, p):
        level.modify(ctx, p)
        with ctx.cluster.lock:
            conf = level.conf(ctx.cluster, p)
            _assert_digest(conf, p)
            old = find(conf, p["name"])
            new_name = p.get("rename") or old["name"]
            if new_name.lower() != p["name"].lower() and new_name.lower() in conf["aliases"]:
                param_errors({"rename": f"alias '{new_name}' already exists"})
            del conf["aliases"][p["name"].lower()]
            comment = p["comment"] if "comment" in p else old.get("comment")
            conf["aliases"][new_name.lower()] = _alias(new_name, p["cidr"], comment)
        return None

    @api.delete(f"{base}/{{name}}", params={**pp, "name": alias_name, "digest": DIGEST}, proxyto=level.proxyto)
    def delete_alias(ctx, p):
        level.modify(ctx, p)
        with ctx.cluster.lock:
            conf = level.conf(ctx.cluster, p)
            _assert_digest(conf, p)
            conf["aliases"].pop(p["name"].lower(), None)
        return None


def _alias(name: str, cidr: str, comment: str | None) -> dict:
    out = {"name": name, "cidr": cidr}
    if comment:
        out["comment"] = comment
    return out


for _level in _ipset_levels():
    _register_aliases(_level)


# ---- refs, macros, logs, indexes ----------------------------------------------------------------

def _refs(conf: dict, scope: str, kind: str | None) -> list[dict]:
    out = []
    if kind in (None, "alias"):
        for a in sorted(conf["aliases"].values(), key=lambda a: a["name"]):
            out.append({"type": "alias", "name": a["name"], "ref": f"{scope}/{a['name']}", "scope": scope,
                        **({"comment": a["comment"]} if a.get("comment") else {})})
    if kind in (None, "ipset"):
        for name, s in sorted(conf["ipsets"].items()):
            out.append({"type": "ipset", "name": name, "ref": f"+{scope}/{name}", "scope": scope,
                        **({"comment": s["comment"]} if s.get("comment") else {})})
    return out


REF_TYPE = P.enum(["alias", "ipset"])


@api.get("/cluster/firewall/refs", params={"type": REF_TYPE})
def cluster_refs(ctx, p):
    ctx.check("/", "Sys.Audit")
    with ctx.cluster.lock:
        return _refs(ctx.cluster.firewall["cluster"], "dc", p.get("type"))


def _register_guest_extras(level: Level):
    @api.get(f"{level.prefix}/refs", params={**level.path_params, "type": REF_TYPE}, proxyto=level.proxyto)
    def guest_refs(ctx, p):
        level.audit(ctx, p)
        with ctx.cluster.lock:
            conf = level.conf(ctx.cluster, p)
            return _refs(ctx.cluster.firewall["cluster"], "dc", p.get("type")) + _refs(conf, "guest", p.get("type"))

    @api.get(f"{level.prefix}/log", params={**level.path_params, **LOG_PARAMS}, proxyto=level.proxyto)
    def guest_log(ctx, p):
        ctx.check(f"/vms/{p['vmid']}", "VM.Console")
        with ctx.cluster.lock:
            conf = level.conf(ctx.cluster, p)
            active = _enabled(ctx.cluster) and bool(conf["options"].get("enable"))
            lines = _synthetic_log(p["vmid"], conf, f"tap{p['vmid']}i0") if active else []
        return _page(lines, p)

    @api.get(level.prefix, params=dict(level.path_params), proxyto=level.proxyto)
    def guest_index(ctx, p):
        return [{"name": n} for n in ("rules", "aliases", "ipset", "refs", "options", "log")]


LOG_PARAMS = {"limit": P.integer(minimum=0), "start": P.integer(minimum=0), "since": P.integer(minimum=0),
              "until": P.integer(minimum=0)}

for _level in GUEST_LEVELS:
    _register_guest_extras(_level)


def _enabled(cluster) -> bool:
    return bool(int(cluster.firewall["cluster"]["options"].get("enable", 0)))


def _synthetic_log(vmid, conf: dict, chain: str, host_ip: str | None = None) -> list[str]:
    """A few pvefw-logger lines shaped like the real ones: what the default policy dropped."""
    policy = conf["options"].get("policy_in", "DROP")
    stamp = time.strftime("%d/%b/%Y:%H:%M:%S %z", time.localtime(time.time() - 60))
    lines = [f"0 5 - {stamp} starting pvefw logger"]
    for i, (src, dport) in enumerate((("203.0.113.7", 3389), ("198.51.100.23", 23), ("192.0.2.41", 5900))):
        if host_ip:  # the host's own chain: traffic to the node's address
            where, dst = "IN=vmbr0 PHYSIN=eno1", host_ip
        else:
            where, dst = f"IN=fwbr{vmid}i0 OUT=fwbr{vmid}i0 PHYSIN=fwln{vmid}i0 PHYSOUT={chain}", f"10.20.0.{vmid % 250}"
        lines.append(f"{vmid} 6 {chain}-IN {stamp} policy {policy}: {where} SRC={src} DST={dst} LEN=60 TOS=0x00 "
                     f"PREC=0x00 TTL=52 ID={40000 + i} DF PROTO=TCP SPT={51000 + i} DPT={dport} SEQ={1000 * i} "
                     "ACK=0 WINDOW=64240 SYN")
    return lines


def _page(lines: list[str], p: dict) -> Result:
    start, limit = p.get("start", 0), p.get("limit", 50)
    chosen = lines[start:start + limit] if limit else lines[start:]
    return Result([{"n": start + i + 1, "t": t} for i, t in enumerate(chosen)], total=len(lines))


@api.get("/nodes/{node}/firewall/log", params={"node": P.node(), **LOG_PARAMS}, proxyto="node")
def node_log(ctx, p):
    ctx.check(f"/nodes/{p['node']}", "Sys.Syslog")
    with ctx.cluster.lock:
        conf = LEVELS[1].conf(ctx.cluster, p)
        active = _enabled(ctx.cluster) and bool(int(conf["options"].get("enable", 1)))
        cluster_conf = {"options": ctx.cluster.firewall["cluster"]["options"]}
        node_ip = ctx.cluster.nodes[p["node"]].ip
        lines = _synthetic_log(0, cluster_conf, "PVEFW-HOST", host_ip=node_ip) if active else []
    return _page(lines, p)


@api.get("/cluster/firewall/macros", params={})
def macros(ctx, p):
    return [{"macro": name, "descr": descr} for name, descr in sorted(MACROS.items(), key=lambda kv: kv[0].lower())]


@api.get("/cluster/firewall", params={})
def cluster_index(ctx, p):
    return [{"name": n} for n in ("aliases", "groups", "ipset", "macros", "options", "refs", "rules")]


@api.get("/nodes/{node}/firewall", params={"node": P.node()}, proxyto="node")
def node_index(ctx, p):
    return [{"name": n} for n in ("log", "options", "rules")]


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
