"""Per-node reads: version, usage history, task history, network interfaces."""

from __future__ import annotations

from typing import Required, TypedDict

from .errors import ProxmoxNotFound


class Version(TypedDict, total=False):
    """GET /version or /nodes/{node}/version: release, repoid, version promised."""

    version: Required[str]
    release: Required[str]
    repoid: Required[str]
    console: str


class NetworkInterface(TypedDict, total=False):
    """One item of GET /nodes/{node}/network: only `iface` and `type` are promised."""

    iface: Required[str]
    type: Required[str]  # bridge | bond | eth | vlan | OVSBridge | ...
    active: int
    autostart: int
    bridge_ports: str
    bridge_vlan_aware: int
    cidr: str
    comments: str


BRIDGE_TYPES = ("bridge", "OVSBridge")


def version(client, node: str | None = None) -> Version:
    """GET /nodes/{node}/version, or GET /version (the node answering) without `node`."""
    data = client.get(f"nodes/{node}/version" if node else "version") or {}
    return {"version": str(data.get("version") or ""), "release": str(data.get("release") or ""),
            "repoid": str(data.get("repoid") or ""), **({"console": data["console"]} if data.get("console") else {})}


def rrddata(client, node: str, timeframe: str = "hour", cf: str = "AVERAGE") -> list[dict]:
    """GET /nodes/{node}/rrddata: usage points (every field of a point may be missing)."""
    return client.get(f"nodes/{node}/rrddata", timeframe=timeframe, cf=cf) or []


def tasks(client, node: str, *, vmid: int | None = None, limit: int = 20, source: str = "all") -> list[dict]:
    """GET /nodes/{node}/tasks: recent tasks (upid, type, id, user, starttime promised)."""
    return client.get(f"nodes/{node}/tasks", vmid=vmid, limit=limit, source=source) or []


def network(client, node: str, type: str | None = None) -> list[NetworkInterface]:
    """GET /nodes/{node}/network (optionally one `type`, e.g. any_bridge)."""
    return [i for i in client.get(f"nodes/{node}/network", type=type) or [] if isinstance(i, dict) and i.get("iface")]


def bridges(client, node: str) -> list[str]:
    """Names of the bridges a guest NIC can join on `node` (Linux and OVS bridges), sorted;
    [] when the node does not serve its network list."""
    try:
        items = network(client, node)
    except ProxmoxNotFound:
        return []
    return sorted(i["iface"] for i in items if i.get("type") in BRIDGE_TYPES)
