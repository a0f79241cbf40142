"""/pools: resource pools, the tenant containers of ACLs (pve-semantics §6.4, pve-manager PVE/API2/Pool.pm).

`cluster.pools[poolid] = {"comment": str, "vms": set[int], "storage": set[str]}`. A guest is in at
most one pool; ACLs on /pool/<p> reach the members (pvesim.access). Nested pools are `a/b`.
"""

from __future__ import annotations

import re

from ..errors import ApiError
from ..params import P
from ..router import api
from .cluster import guest_resource, storage_resource

POOLID = P.string(optional=False, format="pve-poolid")
MEMBER_TYPES = ["qemu", "lxc", "storage"]
UPDATE_PARAMS = {
    "poolid": POOLID,
    "comment": P.string(),
    "vms": P.string(format="pve-vmid-list"),
    "storage": P.string(format="pve-storage-id-list"),
    "delete": P.boolean(default=0),
    "allow-move": P.boolean(default=0),
}


def _split(text: str | None) -> list[str]:
    return [x for x in re.split(r"[,;\s]+", text or "") if x]


def _pool(cluster, poolid: str, prefix: str = "") -> dict:
    pool = cluster.pools.get(poolid)
    if pool is None:
        raise ApiError(500, f"{prefix}pool '{poolid}' does not exist")
    return pool


def _members(cluster, pool: dict, kind: str | None) -> list[dict]:
    out = []
    for vmid in sorted(pool["vms"]):
        guest = cluster.guests.get(vmid)
        if guest is not None and kind in (None, guest.type):
            out.append(guest_resource(cluster, guest))
    if kind in (None, "storage"):
        for storage_id in sorted(pool["storage"]):
            storage = cluster.storages.get(storage_id)
            if storage is None:
                continue
            # the local node when the storage is there, else the first node that has it
            node_name = cluster.local_node if storage.nodes is None or cluster.local_node in storage.nodes \
                else sorted(storage.nodes)[0]
            out.append(storage_resource(cluster, storage, cluster.nodes[node_name]))
    return out


def _entry(poolid: str, pool: dict) -> dict:
    entry = {"poolid": poolid}
    if pool.get("comment"):
        entry["comment"] = pool["comment"]
    return entry


@api.get("/pools", params={"poolid": P.string(format="pve-poolid"), "type": P.enum(MEMBER_TYPES)})
def list_pools(ctx, p):
    """Pools the caller may audit; with poolid that one pool with its members."""
    cluster = ctx.cluster
    if "type" in p and "poolid" not in p:
        raise ApiError(400, "Parameter verification failed.", {"poolid": "missing property - 'type' requires this property"})
    with cluster.lock:
        if "poolid" in p:
            ctx.check(f"/pool/{p['poolid']}", "Pool.Audit")
            pool = _pool(cluster, p["poolid"])
            return [{**_entry(p["poolid"], pool), "members": _members(cluster, pool, p.get("type"))}]
        return [_entry(poolid, cluster.pools[poolid]) for poolid in sorted(cluster.pools)
                if ctx.has(f"/pool/{poolid}", "Pool.Audit")]


@api.post("/pools", params={"poolid": POOLID, "comment": P.string()})
def create_pool(ctx, p):
    poolid = p["poolid"]
    ctx.check(f"/pool/{poolid}", "Pool.Allocate")
    cluster = ctx.cluster
    with cluster.lock:
        if poolid in cluster.pools:
            raise ApiError(500, f"create pool failed: pool '{poolid}' already exists")
        if poolid.count("/") > 2:
            raise ApiError(500, f"create pool failed: pool '{poolid}' is nested too deeply (max. 3 levels)")
        parent = poolid.rpartition("/")[0]
        if parent and parent not in cluster.pools:
            raise ApiError(500, f"create pool failed: parent '{parent}' does not exist")
        cluster.pools[poolid] = {"comment": p.get("comment", ""), "vms": set(), "storage": set()}
    return None


def _update(ctx, p):
    """Add (or with delete=1 remove) guests and storages; a guest in another pool moves only with allow-move."""
    poolid = p["poolid"]
    ctx.check(f"/pool/{poolid}", "Pool.Allocate")
    cluster = ctx.cluster
    fail = "update pools failed: "
    with cluster.lock:
        pool = _pool(cluster, poolid, fail)
        vms = [int(v) for v in _split(p.get("vms"))]
        storages = _split(p.get("storage"))
        moves: dict[int, str] = {}
        for vmid in vms:  # check everything before changing anything
            _check_perm_modify(ctx, f"/vms/{vmid}", "VM.Allocate")
            if p.get("delete"):
                if vmid not in pool["vms"]:
                    raise ApiError(500, f"{fail}VM {vmid} is not a pool member")
                continue
            if vmid in pool["vms"]:
                raise ApiError(500, f"{fail}VM {vmid} is already a pool member")
            current = next((pid for pid, other in cluster.pools.items() if vmid in other["vms"]), None)
            if current is not None:
                if not p.get("allow-move"):
                    raise ApiError(500, f"{fail}VM {vmid} belongs already to pool '{current}' and 'allow-move' is not set")
                _check_perm_modify(ctx, f"/pool/{current}", "Pool.Allocate")
                moves[vmid] = current
        for storage_id in storages:
            _check_perm_modify(ctx, f"/storage/{storage_id}", "Datastore.Allocate")
            if p.get("delete") and storage_id not in pool["storage"]:
                raise ApiError(500, f"{fail}Storage '{storage_id}' is not a pool member")
            if not p.get("delete") and storage_id in pool["storage"]:
                raise ApiError(500, f"{fail}Storage '{storage_id}' is already a pool member")
        if "comment" in p:
            pool["comment"] = p["comment"]
        for vmid in vms:
            if p.get("delete"):
                pool["vms"].discard(vmid)
            else:
                if vmid in moves:
                    cluster.pools[moves[vmid]]["vms"].discard(vmid)
                pool["vms"].add(vmid)
        for storage_id in storages:
            (pool["storage"].discard if p.get("delete") else pool["storage"].add)(storage_id)
    return None


def _check_perm_modify(ctx, path: str, allocate: str) -> None:
    """RPCEnvironment::check_perm_modify: Permissions.Modify or the object's Allocate privilege."""
    if not ctx.is_root:
        ctx.check(path, "Permissions.Modify", allocate, any=True)


def _delete(ctx, p):
    poolid = p["poolid"]
    ctx.check(f"/pool/{poolid}", "Pool.Allocate")
    cluster = ctx.cluster
    fail = "delete pool failed: "
    with cluster.lock:
        pool = _pool(cluster, poolid, fail)
        for vmid in sorted(pool["vms"]):
            if vmid in cluster.guests:  # destroyed guests do not count
                raise ApiError(500, f"{fail}pool '{poolid}' is not empty (contains VM {vmid})")
        for storage_id in sorted(pool["storage"]):
            if storage_id in cluster.storages:
                raise ApiError(500, f"{fail}pool '{poolid}' is not empty (contains storage '{storage_id}')")
        for other in sorted(cluster.pools):
            if other.startswith(poolid + "/"):
                raise ApiError(500, f"{fail}pool '{poolid}' is not empty (contains pool '{other}')")
        del cluster.pools[poolid]
        ctx.cluster.access.acl = [a for a in ctx.cluster.access.acl
                                  if a.path != f"/pool/{poolid}" and not a.path.startswith(f"/pool/{poolid}/")]
    return None


@api.put("/pools", params=dict(UPDATE_PARAMS))
def update_pool(ctx, p):
    return _update(ctx, p)


@api.delete("/pools", params={"poolid": POOLID})
def delete_pool(ctx, p):
    return _delete(ctx, p)


# ---- deprecated /pools/{poolid} variants (still served by PVE 9.1) ---------------------------

@api.get("/pools/{poolid}", params={"poolid": POOLID, "type": P.enum(MEMBER_TYPES)})
def read_pool(ctx, p):
    ctx.check(f"/pool/{p['poolid']}", "Pool.Audit")
    cluster = ctx.cluster
    with cluster.lock:
        pool = _pool(cluster, p["poolid"])
        out = {"members": _members(cluster, pool, p.get("type"))}
        if pool.get("comment"):
            out["comment"] = pool["comment"]
        return out


@api.put("/pools/{poolid}", params=dict(UPDATE_PARAMS))
def update_pool_deprecated(ctx, p):
    return _update(ctx, p)


@api.delete("/pools/{poolid}", params={"poolid": POOLID})
def delete_pool_deprecated(ctx, p):
    return _delete(ctx, p)
