"""/nodes/{node}/network: the node's interfaces (bridges, bonds, VLANs, physical NICs).

Each scenario node may list its interfaces (`[[nodes.network]]`, keys as the API returns them);
a node without a list gets a physical pair bonded under a VLAN-aware vmbr0 carrying its IP.
"""

from __future__ import annotations

import ipaddress

from ..params import P
from ..router import api

TYPES = ("bridge", "bond", "eth", "alias", "vlan", "fabric", "OVSBridge", "OVSBond", "OVSPort", "OVSIntPort",
         "vnet", "unknown")
# PVE's `type` filter: the bridge families (no SDN vnets are simulated, so include_sdn lists everything)
FILTERS = {"any_bridge": {"bridge", "OVSBridge"}, "any_local_bridge": {"bridge", "OVSBridge"}}


def default_interfaces(ip: str) -> list[dict]:
    return [
        {"iface": "eno1", "type": "eth"},
        {"iface": "eno2", "type": "eth"},
        {"iface": "bond0", "type": "bond", "slaves": "eno1 eno2", "bond_mode": "802.3ad",
         "bond_xmit_hash_policy": "layer3+4"},
        {"iface": "vmbr0", "type": "bridge", "bridge_ports": "bond0", "bridge_vlan_aware": 1,
         "cidr": f"{ip}/24", "gateway": str(ipaddress.ip_interface(f"{ip}/24").network[1])},
    ]


def interface(entry: dict, priority: int, where: str) -> dict:
    """One interface as GET /nodes/{node}/network lists it, from its scenario entry."""
    for key in ("iface", "type"):
        if not entry.get(key):
            raise ValueError(f"{where}: '{key}' is required")
    if entry["type"] not in TYPES:
        raise ValueError(f"{where}: 'type' must be one of {', '.join(TYPES)}, not '{entry['type']}'")
    out = {"priority": priority, **entry}
    if out.get("cidr") and not out.get("address"):
        net = ipaddress.ip_interface(out["cidr"])
        out["address"], out["netmask"] = str(net.ip), str(net.network.prefixlen)
    elif out.get("address") and out.get("netmask") and not out.get("cidr"):
        out["cidr"] = f"{out['address']}/{out['netmask']}"
    out.setdefault("method", "static" if out.get("address") else "manual")
    out.setdefault("method6", "static" if out.get("address6") else "manual")
    out.setdefault("families", ["inet", "inet6"] if out.get("address6") else ["inet"])
    out.setdefault("active", 1)
    if out["type"] == "eth":
        out.setdefault("exists", 1)
    else:
        out.setdefault("autostart", 1)
    if out["type"] == "bridge":
        out.setdefault("bridge_stp", "off")
        out.setdefault("bridge_fd", "0")
        if out.get("bridge_vlan_aware"):
            out.setdefault("bridge_vids", "2-4094")
    if out["type"] == "bond":
        out.setdefault("bond-miimon", "100")
    if out["type"] == "vlan" and "." in out["iface"]:
        raw, _, tag = out["iface"].rpartition(".")
        out.setdefault("vlan-raw-device", raw)
        out.setdefault("vlan-id", int(tag))
    return out


def install(cluster, scenario) -> None:
    entries = {n["name"]: n.get("network") for n in scenario.get("nodes", [])}
    cluster.network = {}
    for name, node in cluster.nodes.items():
        listed = entries.get(name) or default_interfaces(node.ip)
        cluster.network[name] = [interface(dict(e), i, f"node {name} network entry {i}")
                                 for i, e in enumerate(listed, start=1)]


@api.get("/nodes/{node}/network", params={
    "node": P.node(), "type": P.enum(TYPES[:-1] + ("any_bridge", "any_local_bridge", "include_sdn")),
}, proxyto="node")
def network_index(ctx, p):
    cluster = ctx.cluster
    with cluster.lock:
        cluster.node(p["node"])
        items = [dict(i) for i in cluster.network.get(p["node"], [])]
    wanted = p.get("type")
    if wanted and wanted != "include_sdn":
        types = FILTERS.get(wanted, {wanted})
        items = [i for i in items if i["type"] in types]
    return items
