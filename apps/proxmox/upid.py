"""UPID parsing (pve-semantics §2.1, proxmox/pve-common UPID.pm)."""

from __future__ import annotations

import re
from dataclasses import dataclass

UPID_RE = re.compile(
    r"^UPID:(?P<node>[a-zA-Z0-9]([a-zA-Z0-9\-]*[a-zA-Z0-9])?):(?P<pid>[0-9A-Fa-f]{8}):"
    r"(?P<pstart>[0-9A-Fa-f]{8,9}):(?P<starttime>[0-9A-Fa-f]{8}):(?P<type>[^:\s/]+):"
    r"(?P<id>[^:\s/]*):(?P<user>[^:\s/]+):$"
)


@dataclass(frozen=True)
class Upid:
    node: str
    pid: int
    pstart: int
    starttime: int
    type: str
    id: str
    user: str  # user@realm or user@realm!tokenid, as Proxmox writes it

    @property
    def tokenid(self) -> str | None:
        return self.user.split("!", 1)[1] if "!" in self.user else None


def parse_upid(upid: str) -> Upid:
    """Decode a UPID string; raises ValueError naming the bad value when it does not parse."""
    match = UPID_RE.match(upid or "")
    if not match:
        raise ValueError(f"unable to parse worker upid '{upid}'")
    return Upid(
        node=match.group("node"),
        pid=int(match.group("pid"), 16),
        pstart=int(match.group("pstart"), 16),
        starttime=int(match.group("starttime"), 16),
        type=match.group("type"),
        id=match.group("id"),
        user=match.group("user"),
    )


def is_upid(value) -> bool:
    return isinstance(value, str) and UPID_RE.match(value) is not None
