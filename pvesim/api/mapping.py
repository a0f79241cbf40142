"""/cluster/mapping/pci: cluster-wide PCI resource mappings (pve-semantics §5.3).

Stored in `cluster.pci_mappings` as {id: {"description", "map": [entry strings], "mdev",
"live-migration-capable"}}; hostpciN `mapping=<id>` resolves through `node_entries()`.
"""

from __future__ import annotations

import hashlib
import json

from ..errors import ApiError
from ..params import P, PropString, parse_props
from ..router import api

_HEXID = r"[0-9A-Fa-f]{4}:[0-9A-Fa-f]{4}"
_PATH = r"(?:[a-f0-9]{4,}:[a-f0-9]{2}:[a-f0-9]{2}(?:.[a-f0-9])?;)*[a-f0-9]{4,}:[a-f0-9]{2}:[a-f0-9]{2}(?:.[a-f0-9])?"

MAP_ENTRY = PropString({
    "node": P.string(optional=False, format="pve-node"),
    "path": P.string(optional=False, pattern=_PATH),
    "id": P.string(optional=False, pattern=_HEXID),
    "subsystem-id": P.string(pattern=_HEXID),
    "iommugroup": P.integer(),
    "description": P.string(max_length=4096),
})
MAP_PARAM = P.array(items=P.string(prop=MAP_ENTRY), optional=False)


def node_entries(cluster, mapping_id: str, node: str) -> list[dict]:
    """The parsed map entries of `mapping_id` for `node` (empty if the mapping or entry is missing)."""
    mapping = cluster.pci_mappings.get(mapping_id)
    if mapping is None:
        return []
    entries = [parse_props(text) for text in mapping["map"]]
    return [e for e in entries if e.get("node") == node]


def _digest(entry: dict) -> str:
    return hashlib.sha1(json.dumps(entry, sort_keys=True, default=str).encode()).hexdigest()


def _may_see(ctx, mapping_id: str) -> bool:
    path = f"/mapping/pci/{mapping_id}"
    return any(ctx.has(path, priv) for priv in ("Mapping.Modify", "Mapping.Use", "Mapping.Audit"))


def _api_entry(mapping_id: str, mapping: dict) -> dict:
    out = {"id": mapping_id, "description": mapping.get("description", ""), "map": list(mapping["map"])}
    for key in ("mdev", "live-migration-capable"):
        if mapping.get(key):
            out[key] = 1
    return out


def node_checks(cluster, mapping: dict, node_name: str) -> list[dict]:
    """What `check-node` reports: the mapping compared with the node's real hardware."""
    node = cluster.nodes.get(node_name)
    entries = [parse_props(text) for text in mapping["map"]]
    entries = [e for e in entries if e.get("node") == node_name]
    if not entries:
        return [{"severity": "warning", "message": f"No mapping for node {node_name}."}]
    devices = {d.id: d for d in (node.pci if node else [])}
    checks = []
    for entry in entries:
        for idx, path in enumerate(entry.get("path", "").split(";")):
            dev = devices.get(path if path.count(":") == 2 else f"0000:{path}")
            if dev is None:
                checks.append({"severity": "error", "message": f"PCI device '{path}' not found"})
                continue
            expected = {"id": f"{dev.vendor[2:]}:{dev.device[2:]}"}
            if dev.subsystem_vendor and dev.subsystem_device:
                expected["subsystem-id"] = f"{dev.subsystem_vendor[2:]}:{dev.subsystem_device[2:]}"
            if idx == 0:  # PVE checks the IOMMU group only on the first device
                expected["iommugroup"] = str(dev.iommugroup)
            for prop, want in expected.items():
                have = entry.get(prop)
                if have is not None and have.lower() != want.lower():
                    checks.append({"severity": "error",
                                   "message": f"'{prop}' does not match for '{path}' ({want} != {have})"})
    return checks


@api.get("/cluster/mapping", params={})
def mapping_index(ctx, p):
    return [{"name": "pci"}]


@api.get("/cluster/mapping/pci", params={"check-node": P.string(format="pve-node")})
def pci_list(ctx, p):
    cluster = ctx.cluster
    check_node = p.get("check-node")
    with cluster.lock:
        if check_node is not None:
            cluster.node(check_node)
        out = []
        for mapping_id in sorted(cluster.pci_mappings):
            if not _may_see(ctx, mapping_id):
                continue
            mapping = cluster.pci_mappings[mapping_id]
            item = _api_entry(mapping_id, mapping)
            if check_node is not None:
                item["checks"] = node_checks(cluster, mapping, check_node)
            out.append(item)
        return out


@api.get("/cluster/mapping/pci/{id}", params={"id": P.string(optional=False, format="pve-configid")})
def pci_get(ctx, p):
    mapping_id = p["id"]
    if not _may_see(ctx, mapping_id):
        raise ApiError(403, f"Permission check failed (/mapping/pci/{mapping_id}, Mapping.Audit|Mapping.Modify|Mapping.Use)")
    with ctx.cluster.lock:
        mapping = ctx.cluster.pci_mappings.get(mapping_id)
        if mapping is None:
            raise ApiError(500, f"PCI mapping '{mapping_id}' not found")
        out = _api_entry(mapping_id, mapping)
        out["digest"] = _digest(mapping)
        return out


@api.post("/cluster/mapping/pci", params={
    "id": P.string(optional=False, format="pve-configid"), "map": MAP_PARAM,
    "description": P.string(max_length=4096), "mdev": P.boolean(default=0),
    "live-migration-capable": P.boolean(default=0),
})
def pci_create(ctx, p):
    ctx.check("/mapping/pci", "Mapping.Modify")
    cluster = ctx.cluster
    mapping_id = p["id"]
    with cluster.lock:
        if mapping_id in cluster.pci_mappings:
            raise ApiError(500, f"create hardware mapping failed: cfs-lock 'file-mapping_pci_cfg' error: "
                                f"pci ID '{mapping_id}' already defined")
        cluster.pci_mappings[mapping_id] = {
            "description": p.get("description", ""), "map": list(p["map"]), "mdev": int(p.get("mdev", 0)),
            "live-migration-capable": int(p.get("live-migration-capable", 0))}
    return None


@api.put("/cluster/mapping/pci/{id}", params={
    "id": P.string(optional=False, format="pve-configid"), "map": P.array(items=P.string(prop=MAP_ENTRY)),
    "description": P.string(max_length=4096), "mdev": P.boolean(default=0),
    "live-migration-capable": P.boolean(default=0), "delete": P.string(max_length=4096),
    "digest": P.digest(),
})
def pci_update(ctx, p):
    mapping_id = p["id"]
    ctx.check(f"/mapping/pci/{mapping_id}", "Mapping.Modify")
    cluster = ctx.cluster
    with cluster.lock:
        mapping = cluster.pci_mappings.get(mapping_id)
        if mapping is None:
            raise ApiError(500, f"update hardware mapping failed: cfs-lock 'file-mapping_pci_cfg' error: "
                                f"no such pci mapping '{mapping_id}'")
        if p.get("digest") and p["digest"] != _digest(mapping):
            raise ApiError(500, "detected modified configuration - file changed by other user? Try again.")
        for key in [k.strip() for k in (p.get("delete") or "").split(",") if k.strip()]:
            if key == "map":
                raise ApiError(500, "update hardware mapping failed: cfs-lock 'file-mapping_pci_cfg' error: "
                                    "unable to delete required option 'map'")
            if key not in ("description", "mdev", "live-migration-capable"):
                raise ApiError(500, "update hardware mapping failed: cfs-lock 'file-mapping_pci_cfg' error: "
                                    f"no such option '{key}'")
            mapping[key] = "" if key == "description" else 0
        if "map" in p:
            mapping["map"] = list(p["map"])
        for key in ("description", "mdev", "live-migration-capable"):
            if key in p:
                mapping[key] = p[key]
    return None


@api.delete("/cluster/mapping/pci/{id}", params={"id": P.string(optional=False, format="pve-configid")})
def pci_delete(ctx, p):
    ctx.check("/mapping/pci", "Mapping.Modify")
    with ctx.cluster.lock:
        ctx.cluster.pci_mappings.pop(p["id"], None)
    return None
