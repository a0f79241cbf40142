"""The effective firewall of one guest, as Proxmox evaluates it, and "what happens to this packet?".

For a new connection to or from a guest NIC with `firewall=1`, pve-firewall's tap chain drops
invalid packets and accepts established ones, then walks the guest's rules top to bottom with each
group rule replaced by its security group's rules (in the group's order), and ends with the
guest's policy for that direction. Before all that, inbound packets from the datacenter's IP set
`blacklist` are dropped. Datacenter [RULES] and node rules filter the hosts' own traffic, not the
guests'; the datacenter `enable` option gates everything.

Pure functions on plain data: `effective(...)` builds the rows, `decide(rows, query, resolver)`
finds the first rule that certainly matches. A rule that depends on something the question does
not say (the guest's own address, a source port, an unmodelled macro) is reported as "unknown"
and skipped, never guessed.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field

from .validation import PORT_PROTOCOLS, PROTOCOLS, SERVICES

# Macros by the traffic they stand for: (protocol, destination ports or None, icmp-type or None).
MACRO_TRAFFIC: dict[str, list[tuple[str, str | None]]] = {
    "SSH": [("tcp", "22")], "HTTP": [("tcp", "80")], "HTTPS": [("tcp", "443")], "Web": [("tcp", "80,443")],
    "DNS": [("udp", "53"), ("tcp", "53")], "SMTP": [("tcp", "25")], "SMTPS": [("tcp", "465")],
    "Submission": [("tcp", "587")], "IMAP": [("tcp", "143")], "IMAPS": [("tcp", "993")],
    "POP3": [("tcp", "110")], "POP3S": [("tcp", "995")], "MySQL": [("tcp", "3306")],
    "PostgreSQL": [("tcp", "5432")], "RDP": [("tcp", "3389")], "Telnet": [("tcp", "23")],
    "FTP": [("tcp", "21")], "NTP": [("udp", "123")], "SNMP": [("udp", "161:162"), ("tcp", "161")],
    "LDAP": [("tcp", "389")], "LDAPS": [("tcp", "636")], "Rsync": [("tcp", "873")], "Git": [("tcp", "9418")],
    "VNC": [("tcp", "5900:5999")], "Ping": [("icmp", None)], "MSSQL": [("tcp", "1433")],
    "OpenVPN": [("udp", "1194")], "Squid": [("tcp", "3128")], "Syslog": [("udp", "514"), ("tcp", "514")],
    "TFTP": [("udp", "69")], "BGP": [("tcp", "179")], "PMG": [("tcp", "8006")], "Webmin": [("tcp", "10000")],
}


@dataclass
class Row:
    """One line of the effective table."""

    origin: str  # "guest", "group <name>", "policy", "state"
    rule: dict
    number: int = 0  # 1-based line number in the table
    enabled: bool = True
    via: str = ""  # the guest rule (position) that pulled a group in
    verdict: str = ""  # ACCEPT / DROP / REJECT for rows that decide
    note: str = ""


@dataclass
class Effective:
    active: bool
    reasons: list[str]  # why the firewall does not filter this guest's traffic (when not active)
    rows: dict[str, list[Row]] = field(default_factory=dict)  # direction -> rows
    notes: list[str] = field(default_factory=list)


def _on(value, default: int) -> bool:
    return str(value if value not in (None, "") else default) in ("1", "True", "true")


def effective(*, cluster_options: dict, guest_options: dict, guest_rules: list[dict], groups: dict[str, list[dict]],
              firewalled_nics: list[str], all_nics: list[str], blacklist: bool = False) -> Effective:
    """The rows Proxmox walks for the guest's inbound and outbound traffic, in order. `blacklist`:
    the datacenter has an IP set `blacklist`, whose sources are dropped before any guest rule."""
    reasons = []
    if not _on(cluster_options.get("enable"), 0):
        reasons.append("The datacenter firewall is off (Datacenter > Firewall > Options: enable), so nothing is filtered.")
    if not _on(guest_options.get("enable"), 0):
        reasons.append("This guest's firewall is off (its Firewall options: enable), so its rules are not applied.")
    if all_nics and not firewalled_nics:
        reasons.append("No network device of this guest has firewall=1, so its traffic does not pass the firewall.")
    result = Effective(active=not reasons, reasons=reasons)
    for direction in ("in", "out"):
        rows: list[Row] = []
        if blacklist and direction == "in":  # PVEFW-FWBR-IN's input filters come before the guest's chain
            rows.append(Row("datacenter", {"source": "+dc/blacklist", "comment": "the datacenter's blacklist"},
                            verdict="DROP"))
        rows.append(Row("state", {"comment": "invalid dropped, established accepted"}, note="conntrack"))
        for rule in guest_rules:
            if rule.get("type") == "group":
                members = groups.get(rule.get("action", ""))
                enabled = _on(rule.get("enable"), 0)
                if members is None:
                    rows.append(Row("guest", rule, enabled=False, note=f"security group '{rule.get('action')}' is missing"))
                    continue
                for member in members:
                    if member.get("type") != direction:
                        continue
                    rows.append(Row(f"group {rule['action']}", member, via=f"rule {rule.get('pos', '?')}",
                                    enabled=enabled and _on(member.get("enable"), 0),
                                    verdict=member.get("action", "")))
            elif rule.get("type") == direction:
                rows.append(Row("guest", rule, enabled=_on(rule.get("enable"), 0), verdict=rule.get("action", "")))
        option = "policy_in" if direction == "in" else "policy_out"
        policy = guest_options.get(option) or ("DROP" if direction == "in" else "ACCEPT")
        rows.append(Row("policy", {"comment": f"default policy ({option})"}, verdict=policy))
        for number, row in enumerate(rows, 1):
            row.number = number
        result.rows[direction] = rows
    if _on(guest_options.get("ipfilter"), 0):
        result.notes.append("ipfilter is on: outbound packets from addresses not in ipfilter-net<N> are dropped first.")
    if _on(guest_options.get("macfilter"), 1):
        result.notes.append("macfilter is on: outbound packets with another MAC address than the NIC's are dropped.")
    if _on(guest_options.get("dhcp"), 0):
        result.notes.append("dhcp is on: DHCP requests and answers pass before these rules.")
    return result


# -- the question: "what happens to TCP 22 from 203.0.113.5?" -------------------------------------

@dataclass
class Query:
    direction: str  # in | out
    proto: str  # tcp, udp, icmp, ...
    port: int | None  # destination port
    remote: str  # the other side's address: the source of inbound traffic, the destination of outbound
    local: str = ""  # the guest's own address, when known

    def __post_init__(self):
        self.proto = self.proto.lower()
        self.remote_ip = ipaddress.ip_address(self.remote)
        self.local_ip = ipaddress.ip_address(self.local) if self.local else None


class Resolver:
    """Addresses behind IP sets and aliases: `ipsets[(scope, name)] = [entries]`, `aliases[(scope, lower name)] = cidr`."""

    def __init__(self, ipsets: dict | None = None, aliases: dict | None = None):
        self.ipsets = ipsets or {}
        self.aliases = aliases or {}

    def _find(self, table: dict, ref: str, lower: bool):
        scope, _, name = ref.rpartition("/")
        name = name.lower() if lower else name
        for candidate in ([scope] if scope else ["guest", "dc"]):
            if (candidate, name) in table:
                return table[(candidate, name)]
        return None

    def contains(self, spec: str, ip) -> bool | None:
        """Does `spec` (rule source/dest) contain `ip`? None when it cannot be told."""
        if spec.startswith("+"):
            entries = self._find(self.ipsets, spec[1:], lower=False)
            if entries is None:
                return None
            inside = False
            for entry in entries:
                hit = self.contains(entry["cidr"], ip)
                if hit is None:
                    return None
                if hit and entry.get("nomatch"):
                    return False  # nomatch entries take precedence
                inside = inside or hit
            return inside
        if "," not in spec and ("/" not in spec or spec.split("/")[0] in ("dc", "guest")) and spec[:1].isalpha() \
                and ":" not in spec:
            cidr = self._find(self.aliases, spec, lower=True)
            return None if cidr is None else self.contains(cidr, ip)
        for item in spec.split(","):
            item = item.strip()
            try:
                if "-" in item and "/" not in item:
                    low, high = (ipaddress.ip_address(x) for x in item.split("-", 1))
                    if low.version == ip.version and int(low) <= int(ip) <= int(high):
                        return True
                elif ip in ipaddress.ip_network(item, strict=False):
                    return True
            except (ValueError, TypeError):
                return None
        return False


def _ports(spec: str) -> list[tuple[int, int]]:
    out = []
    for item in spec.split(","):
        item = item.strip().lower()
        if ":" in item:
            low, high = item.split(":", 1)
            out.append((int(low), int(high)))
        elif item.isdigit():
            out.append((int(item), int(item)))
        elif item in SERVICES:
            out.append((SERVICES[item], SERVICES[item]))
    return out


def _proto_matches(rule_proto: str, query_proto: str) -> bool:
    rule_proto = rule_proto.lower()
    if rule_proto == query_proto:
        return True
    numbers = {rule_proto, str(PROTOCOLS.get(rule_proto, ""))}
    return query_proto in numbers or str(PROTOCOLS.get(query_proto, "")) in numbers


def rule_matches(rule: dict, query: Query, resolver: Resolver) -> tuple[bool | None, str]:
    """(True / False / None for unknown, why) for one rule against the question."""
    traffic = [(rule.get("proto"), rule.get("dport"))]
    if rule.get("macro"):
        known = MACRO_TRAFFIC.get(rule["macro"])
        if known is None:
            return None, f"macro {rule['macro']} is not modelled here"
        traffic = [(rule.get("proto") or p, rule.get("dport") or d) for p, d in known]
    hit = False
    for proto, dport in traffic:
        if proto and not _proto_matches(proto, query.proto):
            continue
        if dport:
            if query.port is None or query.proto not in PORT_PROTOCOLS:
                continue
            if not any(low <= query.port <= high for low, high in _ports(dport)):
                continue
        hit = True
        break
    if not hit:
        return False, "protocol or port differ"
    if rule.get("sport"):
        return None, "depends on the source port"
    if rule.get("icmp-type"):
        return None, "depends on the ICMP type"
    remote_field, local_field = ("source", "dest") if query.direction == "in" else ("dest", "source")
    if rule.get(remote_field):
        inside = resolver.contains(rule[remote_field], query.remote_ip)
        if inside is None:
            return None, f"cannot resolve {rule[remote_field]}"
        if not inside:
            return False, f"{query.remote} is not in {rule[remote_field]}"
    if rule.get(local_field):
        if query.local_ip is None:
            return None, "depends on the guest's own address (give it to decide)"
        inside = resolver.contains(rule[local_field], query.local_ip)
        if inside is None:
            return None, f"cannot resolve {rule[local_field]}"
        if not inside:
            return False, f"{query.local} is not in {rule[local_field]}"
    return True, "matches"


@dataclass
class Decision:
    verdict: str
    row: int  # the deciding row's number
    unknown: list[tuple[int, str]]  # rows that might have matched earlier, and why not decided
    text: str


def decide(effective_view: Effective, query: Query, resolver: Resolver) -> Decision:
    """The first row that certainly matches decides; uncertain rows before it are listed."""
    what = f"{query.proto.upper()}{f' {query.port}' if query.port is not None else ''} " \
           f"{'from' if query.direction == 'in' else 'to'} {query.remote}"
    if not effective_view.active:
        return Decision("ACCEPT", 0, [], f"{what}: passes, the firewall does not filter this guest's traffic.")
    unknown = []
    for row in effective_view.rows[query.direction]:
        if row.origin == "state" or not row.enabled:
            continue
        if row.origin == "policy":
            return Decision(row.verdict, row.number, unknown,
                            f"{what}: no rule matches, so the default policy {row.verdict} applies (row {row.number}).")
        matched, why = rule_matches(row.rule, query, resolver)
        if matched is None:
            unknown.append((row.number, why))
        elif matched:
            where = f"{row.origin} rule" + (f", pulled in by guest {row.via}" if row.via else "")
            return Decision(row.verdict, row.number, unknown, f"{what}: {row.verdict} by row {row.number} ({where}).")
    return Decision("ACCEPT", 0, unknown, f"{what}: no decision")  # unreachable: the policy row always decides
