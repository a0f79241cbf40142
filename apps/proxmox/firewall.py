"""Proxmox VE firewall at its three levels (datacenter, node, guest): options, rules, security
groups, IP sets, aliases, references, macros and logs. Every call is synchronous in Proxmox
(null on writes). Reads return plain typed data; fields the schema marks optional may be absent.

A `Level` names one firewall config file: `Level.cluster()`, `Level.of_node("pve1")`,
`Level.of_guest(GuestRef)`. Security groups exist only at the datacenter; IP sets and aliases at the
datacenter and on guests; logs on nodes and guests.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Required, TypedDict
from urllib.parse import quote

from .refs import GuestRef

RULE_FIELDS = ("type", "action", "macro", "proto", "dport", "sport", "source", "dest", "iface", "log",
               "icmp-type", "enable", "comment")
# What `delete=` may clear on a rule (type and action are required by Proxmox).
CLEARABLE_RULE_FIELDS = ("macro", "proto", "dport", "sport", "source", "dest", "iface", "log", "icmp-type", "comment")
LOG_LEVELS = ("emerg", "alert", "crit", "err", "warning", "notice", "info", "debug", "nolog")
POLICIES = ("ACCEPT", "REJECT", "DROP")


class Rule(TypedDict, total=False):
    """One rule as GET .../rules lists it: `pos`, `type`, `action` promised."""

    pos: Required[int]
    type: Required[str]  # in | out | forward | group
    action: Required[str]  # ACCEPT | DROP | REJECT, or a security group name
    enable: int
    macro: str
    proto: str
    dport: str
    sport: str
    source: str
    dest: str
    iface: str
    log: str
    comment: str
    ipversion: int
    digest: str


class Group(TypedDict, total=False):
    group: Required[str]
    comment: str
    digest: str


class IpSet(TypedDict, total=False):
    name: Required[str]
    comment: str
    digest: str


class IpSetEntry(TypedDict, total=False):
    cidr: Required[str]
    nomatch: int
    comment: str
    digest: str


class Alias(TypedDict, total=False):
    name: Required[str]
    cidr: Required[str]
    comment: str
    ipversion: int
    digest: str


class Ref(TypedDict, total=False):
    """GET .../firewall/refs: an alias or IP set a rule may name (`ref` is how, e.g. `+dc/web`)."""

    type: Required[str]  # alias | ipset
    name: Required[str]
    ref: Required[str]
    scope: str  # dc | guest (absent on older releases: read it from `ref`)
    comment: str


@dataclass(frozen=True)
class Level:
    """One firewall config file: the datacenter's, a node's, or a guest's."""

    kind: str  # cluster | node | guest
    node: str = ""
    guest: GuestRef | None = None

    @classmethod
    def cluster(cls) -> Level:
        return cls("cluster")

    @classmethod
    def of_node(cls, node: str) -> Level:
        if not node:
            raise ValueError("node: a node level needs the node's name")
        return cls("node", node=node)

    @classmethod
    def of_guest(cls, ref: GuestRef) -> Level:
        return cls("guest", node=ref.node, guest=ref)

    @property
    def base(self) -> str:
        if self.kind == "cluster":
            return "cluster/firewall"
        if self.kind == "node":
            return f"nodes/{self.node}/firewall"
        return f"{self.guest.path}/firewall"

    def _needs(self, *kinds: str, what: str) -> None:
        if self.kind not in kinds:
            raise ValueError(f"{what} exist only at the {' and '.join(kinds)} level, not {self.kind}")


def _seg(value) -> str:
    return quote(str(value), safe="")


def _rule_params(rule: dict) -> dict:
    out = {k: rule[k] for k in RULE_FIELDS if rule.get(k) not in (None, "")}
    if "enable" in rule and rule["enable"] is not None:
        out["enable"] = 1 if rule["enable"] in (True, 1, "1") else 0
    return out


def _with_digest(items) -> tuple[list, str]:
    items = [dict(i) for i in items or [] if isinstance(i, dict)]
    digest = next((str(i["digest"]) for i in items if i.get("digest")), "")
    return items, digest


# -- options -------------------------------------------------------------------------------------

def options(client, level: Level) -> tuple[dict, str]:
    """GET .../firewall/options: (options without digest, digest). Unset options are absent."""
    data = dict(client.get(f"{level.base}/options") or {})
    return data, str(data.pop("digest", "") or "")


def set_options(client, level: Level, *, digest: str | None = None, delete=(), **values) -> None:
    """PUT .../firewall/options; `delete` resets options to Proxmox's default."""
    client.put(f"{level.base}/options", digest=digest or None, delete=",".join(delete) or None, **values)


# -- rules ---------------------------------------------------------------------------------------

def _rules_base(level: Level, group: str | None) -> str:
    if group is not None:
        level._needs("cluster", what="security groups")
        return f"cluster/firewall/groups/{_seg(group)}"
    return f"{level.base}/rules"


def rules(client, level: Level, *, group: str | None = None) -> tuple[list[Rule], str]:
    """The rules of a level (or of a security group) in evaluation order, and the file's digest."""
    items, digest = _with_digest(client.get(_rules_base(level, group)))
    for i, item in enumerate(items):
        item.setdefault("pos", i)
        item["pos"] = int(item["pos"])
    items.sort(key=lambda r: r["pos"])
    return items, digest


def create_rule(client, level: Level, rule: dict, *, pos: int | None = None, group: str | None = None,
                digest: str | None = None) -> None:
    """POST: the rule goes on top (pos 0) unless `pos` is given; `enable` defaults to off in Proxmox."""
    client.post(_rules_base(level, group), pos=pos, digest=digest or None, **_rule_params(rule))


def update_rule(client, level: Level, pos: int, rule: dict, *, delete=(), group: str | None = None,
                digest: str | None = None) -> None:
    """PUT .../rules/{pos}: set the given fields, clear those in `delete`."""
    client.put(f"{_rules_base(level, group)}/{int(pos)}", digest=digest or None, delete=",".join(delete) or None,
               **_rule_params(rule))


def move_rule(client, level: Level, pos: int, moveto: int, *, group: str | None = None,
              digest: str | None = None) -> None:
    """PUT .../rules/{pos} moveto=N: the rule goes before the one now at N (N = count: to the end)."""
    client.put(f"{_rules_base(level, group)}/{int(pos)}", moveto=int(moveto), digest=digest or None)


def delete_rule(client, level: Level, pos: int, *, group: str | None = None, digest: str | None = None) -> None:
    client.delete(f"{_rules_base(level, group)}/{int(pos)}", digest=digest or None)


# -- security groups (datacenter) ----------------------------------------------------------------

def groups(client) -> list[Group]:
    items, _ = _with_digest(client.get("cluster/firewall/groups"))
    return [i for i in items if i.get("group")]


def create_group(client, name: str, *, comment: str = "", rename: str | None = None) -> None:
    """POST /cluster/firewall/groups; with `rename` the group `rename` is renamed to `name`."""
    client.post("cluster/firewall/groups", group=name, comment=comment or None, rename=rename or None)


def delete_group(client, name: str) -> None:
    """Proxmox refuses a group that still has rules or is still used by a rule."""
    client.delete(f"cluster/firewall/groups/{_seg(name)}")


# -- IP sets (datacenter and guests) -------------------------------------------------------------

def _ipset_base(level: Level) -> str:
    level._needs("cluster", "guest", what="IP sets")
    return f"{level.base}/ipset"


def ipsets(client, level: Level) -> list[IpSet]:
    items, _ = _with_digest(client.get(_ipset_base(level)))
    return [i for i in items if i.get("name")]


def create_ipset(client, level: Level, name: str, *, comment: str = "", rename: str | None = None) -> None:
    client.post(_ipset_base(level), name=name, comment=comment or None, rename=rename or None)


def delete_ipset(client, level: Level, name: str, *, force: bool = False) -> None:
    """Proxmox refuses a set that still has entries unless `force`."""
    client.delete(f"{_ipset_base(level)}/{_seg(name)}", force=1 if force else None)


def ipset_entries(client, level: Level, name: str) -> list[IpSetEntry]:
    items, _ = _with_digest(client.get(f"{_ipset_base(level)}/{_seg(name)}"))
    return [i for i in items if i.get("cidr")]


def add_ipset_entry(client, level: Level, name: str, cidr: str, *, nomatch: bool = False, comment: str = "") -> None:
    client.post(f"{_ipset_base(level)}/{_seg(name)}", cidr=cidr, nomatch=1 if nomatch else None,
                comment=comment or None)


def update_ipset_entry(client, level: Level, name: str, cidr: str, *, nomatch: bool, comment: str = "") -> None:
    client.put(f"{_ipset_base(level)}/{_seg(name)}/{_seg(cidr)}", nomatch=1 if nomatch else 0, comment=comment)


def delete_ipset_entry(client, level: Level, name: str, cidr: str) -> None:
    client.delete(f"{_ipset_base(level)}/{_seg(name)}/{_seg(cidr)}")


# -- aliases (datacenter and guests) -------------------------------------------------------------

def _alias_base(level: Level) -> str:
    level._needs("cluster", "guest", what="aliases")
    return f"{level.base}/aliases"


def aliases(client, level: Level) -> list[Alias]:
    items, _ = _with_digest(client.get(_alias_base(level)))
    return [i for i in items if i.get("name") and i.get("cidr")]


def create_alias(client, level: Level, name: str, cidr: str, *, comment: str = "") -> None:
    client.post(_alias_base(level), name=name, cidr=cidr, comment=comment or None)


def update_alias(client, level: Level, name: str, cidr: str, *, comment: str = "", rename: str | None = None) -> None:
    client.put(f"{_alias_base(level)}/{_seg(name)}", cidr=cidr, comment=comment, rename=rename or None)


def delete_alias(client, level: Level, name: str) -> None:
    client.delete(f"{_alias_base(level)}/{_seg(name)}")


# -- references, macros, logs --------------------------------------------------------------------

def refs(client, level: Level) -> list[Ref]:
    """Aliases and IP sets a rule at this level may name: the datacenter's, and the guest's own."""
    level._needs("cluster", "guest", what="references")
    out = []
    for item in client.get(f"{level.base}/refs") or []:
        if not isinstance(item, dict) or not item.get("name") or not item.get("type"):
            continue
        ref = dict(item)
        if not ref.get("scope"):
            text = str(ref.get("ref") or "").lstrip("+")
            ref["scope"] = text.split("/", 1)[0] if "/" in text else "dc"
        ref.setdefault("ref", ("+" if ref["type"] == "ipset" else "") + f"{ref['scope']}/{ref['name']}")
        out.append(ref)
    return out


def macros(client) -> dict[str, str]:
    """Proxmox's macro list: name -> description."""
    return {str(i["macro"]): str(i.get("descr") or "") for i in client.get("cluster/firewall/macros") or []
            if isinstance(i, dict) and i.get("macro")}


def log(client, level: Level, *, start: int = 0, limit: int = 200) -> list[dict]:
    """Firewall log lines `[{"n": 1, "t": "..."}]` of a node or a guest."""
    level._needs("node", "guest", what="firewall logs")
    return [i for i in client.get(f"{level.base}/log", start=start, limit=limit) or [] if isinstance(i, dict)]
