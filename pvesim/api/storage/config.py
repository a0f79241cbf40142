"""/storage: the datacenter storage configuration (list, read, create, update, delete)."""

from __future__ import annotations

import re

from ...errors import ApiError
from ...params import P
from ...router import api
from ...state import GiB, Storage
from .schema import CREATE_PARAMS, DEFAULT_CONTENT, REQUIRED, SHARED_TYPES, SUPPORTED_CONTENT, TYPES, UPDATE_PARAMS
from .volumes import _digest, config_dict


# ---- /storage (datacenter config) ------------------------------------------------------------

@api.get("/storage", params={"type": P.enum(TYPES)})
def storage_index(ctx, p):
    cluster = ctx.cluster
    with cluster.lock:
        return [config_dict(cluster, st) for st in cluster.storages.values()
                if (not p.get("type") or st.type == p["type"])
                and (ctx.has(f"/storage/{st.storage}", "Datastore.Audit") or ctx.has(f"/storage/{st.storage}", "Datastore.Allocate"))]


@api.get("/storage/{storage}", params={"storage": P.storage(optional=False)})
def storage_read(ctx, p):
    ctx.check(f"/storage/{p['storage']}", "Datastore.Allocate")
    cluster = ctx.cluster
    with cluster.lock:
        st = cluster.storages.get(p["storage"])
        if st is None:
            raise ApiError(500, f"storage '{p['storage']}' does not exist")
        return config_dict(cluster, st)


def _content_list(st_type: str, text: str | None) -> list[str]:
    if text is None:
        return list(DEFAULT_CONTENT[st_type])
    items = sorted({c for c in re.split(r"[,;\s]+", text) if c})
    for item in items:
        if item not in SUPPORTED_CONTENT[st_type]:
            raise ApiError(400, "Parameter verification failed.", {"content": f"unsupported content type '{item}'"})
    if "none" in items and len(items) > 1:
        raise ApiError(400, "Parameter verification failed.",
                       {"content": "unable to combine 'none' with other content types"})
    return [] if items == ["none"] else items


def _apply_options(st: Storage, p: dict) -> None:
    for key, value in p.items():
        if key in ("storage", "type", "delete", "digest"):
            continue
        if key == "content":
            st.content = _content_list(st.type, value)
        elif key == "nodes":
            st.nodes = [n for n in re.split(r"[,;\s]+", value) if n] or None
        elif key == "disable":
            st.enabled = not value
        elif key == "shared":
            st.shared = bool(value) or st.type in SHARED_TYPES
        elif key == "path":
            st.path = value
        else:
            st.extra[key] = value


@api.post("/storage", params=CREATE_PARAMS)
def storage_create(ctx, p):
    ctx.check("/storage", "Datastore.Allocate")
    cluster = ctx.cluster
    with cluster.lock:
        storage_id, kind = p["storage"], p["type"]
        if storage_id in cluster.storages:
            raise ApiError(500, f"create storage failed: storage ID '{storage_id}' already defined")
        for key in REQUIRED.get(kind, []):
            if key not in p:
                raise ApiError(500, f"create storage failed: missing value for required option '{key}'")
        if "pool" not in p and kind == "rbd":
            p["pool"] = "rbd"
        st = Storage(storage=storage_id, type=kind, content=_content_list(kind, p.get("content")),
                     shared=kind in SHARED_TYPES, total=_guess_total(kind))
        _apply_options(st, p)
        cluster.storages[storage_id] = st
        cluster.storage_digest = _digest(cluster)
        cluster.log_event(cluster.local_node, ctx.userid, f"add storage '{storage_id}' ({kind})")
        return {"storage": storage_id, "type": kind}


def _guess_total(kind: str) -> int:
    return {"rbd": 24000, "cephfs": 24000, "nfs": 16000, "cifs": 8000, "pbs": 32000, "zfspool": 1800,
            "lvmthin": 900, "lvm": 900}.get(kind, 100) * GiB


@api.put("/storage/{storage}", params=UPDATE_PARAMS)
def storage_update(ctx, p):
    ctx.check("/storage", "Datastore.Allocate")
    cluster = ctx.cluster
    with cluster.lock:
        st = cluster.storages.get(p["storage"])
        if st is None:
            raise ApiError(500, f"update storage failed: storage '{p['storage']}' does not exist")
        if p.get("digest") and p["digest"] != getattr(cluster, "storage_digest", ""):
            raise ApiError(500, "update storage failed: detected modified configuration - file changed by other user? Try again.")
        for key in [k for k in re.split(r"[,;\s]+", p.get("delete", "")) if k]:
            if key in p:
                raise ApiError(400, "Parameter verification failed.", {key: f"cannot set and delete property '{key}' at the same time"})
            if key == "nodes":
                st.nodes = None
            elif key == "disable":
                st.enabled = True
            elif key == "content":
                st.content = list(DEFAULT_CONTENT[st.type])
            else:
                st.extra.pop(key, None)
        if "content" in p:
            p["content"] = p["content"]  # validated in _apply_options against the existing type
        _apply_options(st, p)
        cluster.storage_digest = _digest(cluster)
        return {"storage": st.storage, "type": st.type}


@api.delete("/storage/{storage}", params={"storage": P.storage(optional=False)})
def storage_delete(ctx, p):
    ctx.check("/storage", "Datastore.Allocate")
    cluster = ctx.cluster
    with cluster.lock:
        if p["storage"] not in cluster.storages:
            raise ApiError(500, f"delete storage failed: storage '{p['storage']}' does not exist")
        for other in cluster.storages.values():
            if other.extra.get("base", "").startswith(p["storage"] + ":"):
                raise ApiError(500, "delete storage failed: can't remove storage - storage is used as base of another storage")
        del cluster.storages[p["storage"]]
        cluster.storage_digest = _digest(cluster)
    return None
