"""/nodes/{node}/storage/{storage}/content: list, allocate, info, notes/protection, delete, copy."""

from __future__ import annotations

import re

from ...errors import ApiError, TaskError
from ...params import P
from ...router import api
from ...state import MiB, Cluster, Storage, Volume
from .volumes import _check_audit, allocate_volume, content_item, real_volume_id, storage_check, volume_path, volumes_on


# ---- content -----------------------------------------------------------------------------------

@api.get("/nodes/{node}/storage/{storage}/content", params={
    "node": P.node(), "storage": P.storage(optional=False), "content": P.string(format="pve-storage-content"),
    "vmid": P.vmid(optional=True),
}, proxyto="node")
def content_index(ctx, p):
    _check_audit(ctx, p["storage"])
    cluster = ctx.cluster
    with cluster.lock:
        st = storage_check(cluster, p["storage"], p["node"])
        out = []
        for vol in volumes_on(cluster, st, p["node"]):
            if p.get("content") and vol.content != p["content"]:
                continue
            if p.get("vmid") and vol.vmid != p["vmid"]:
                continue
            if vol.vmid is not None and vol.content in ("images", "rootdir", "backup") \
                    and not ctx.has(f"/storage/{st.storage}", "Datastore.Allocate") \
                    and not ctx.has(f"/vms/{vol.vmid}", "VM.Audit") and not ctx.has(f"/vms/{vol.vmid}", "VM.Backup"):
                continue
            out.append(content_item(vol))
        return out


@api.post("/nodes/{node}/storage/{storage}/content", params={
    "node": P.node(), "storage": P.storage(optional=False), "filename": P.string(optional=False),
    "size": P.string(optional=False, pattern=r"\d+[MG]?"), "vmid": P.vmid(),
    "format": P.enum(["raw", "qcow2", "subvol", "vmdk"]),
}, proxyto="node")
def content_create(ctx, p):
    ctx.check(f"/storage/{p['storage']}", "Datastore.AllocateSpace")
    size_text = p["size"]
    kib = int(size_text[:-1]) * (1024 if size_text.endswith("M") else 1024 * 1024) if size_text[-1] in "MG" else int(size_text)
    name, fmt = p["filename"], p.get("format")
    m = re.search(r"\.(raw|qcow2|vmdk)$", name)
    if m:
        if fmt and fmt != m.group(1):
            raise ApiError(400, "Parameter verification failed.", {"format": f"different storage formats ({fmt} != {m.group(1)})"})
        fmt = m.group(1)
    cluster = ctx.cluster
    with cluster.lock:
        vol = allocate_volume(cluster, p["storage"], p["node"], p["vmid"], kib * 1024, fmt=fmt, name=name,
                              content="images")
        return vol.volid


def _find(cluster: Cluster, volid: str, storage_id: str, node: str) -> tuple[Storage, Volume]:
    st = storage_check(cluster, storage_id, node)
    vol = cluster.find_volume(volid, None if st.shared else node)
    if vol is None:
        raise ApiError(500, f"volume_size_info on '{volid}' failed - no format")
    return st, vol


def _check_volume_access(ctx, st: Storage, vol: Volume) -> None:
    """PVE's check_volume_access: Datastore.Allocate, or the volume type's own privilege."""
    path = f"/storage/{st.storage}"
    if ctx.has(path, "Datastore.Allocate"):
        return
    if vol.content in ("iso", "vztmpl", "snippets", "import"):
        ctx.check(path, "Datastore.AllocateSpace", "Datastore.Audit", any=True)
    elif vol.vmid is not None:
        ctx.check(path, "Datastore.AllocateSpace")
        ctx.check(f"/vms/{vol.vmid}", "VM.Config.Disk", "VM.Backup", any=True)
    else:
        ctx.check(path, "Datastore.Allocate")


_VOL_PARAMS = {"node": P.node(), "storage": P.storage(optional=True), "volume": P.string(optional=False)}


@api.get("/nodes/{node}/storage/{storage}/content/{volume}", params=_VOL_PARAMS, proxyto="node", greedy="volume")
def content_info(ctx, p):
    cluster = ctx.cluster
    volid, sid = real_volume_id(p.get("storage"), p["volume"])
    with cluster.lock:
        st, vol = _find(cluster, volid, sid, p["node"])
        _check_volume_access(ctx, st, vol)
        out = {"path": volume_path(st, volid.split(":", 1)[1]), "size": vol.size,
               "used": vol.used if vol.used is not None else vol.size, "format": vol.format}
        if vol.notes is not None:
            out["notes"] = vol.notes
        if vol.content == "backup":
            out["protected"] = 1 if vol.protected else 0
        return out


@api.put("/nodes/{node}/storage/{storage}/content/{volume}", params={
    **_VOL_PARAMS, "notes": P.string(), "protected": P.boolean()}, proxyto="node", greedy="volume")
def content_update(ctx, p):
    cluster = ctx.cluster
    volid, sid = real_volume_id(p.get("storage"), p["volume"])
    with cluster.lock:
        st, vol = _find(cluster, volid, sid, p["node"])
        _check_volume_access(ctx, st, vol)
        if ("notes" in p or "protected" in p) and vol.content != "backup":
            attr = "notes" if "notes" in p else "protected"
            raise ApiError(500, f"{attr} are not supported for content type '{vol.content}'"
                           if attr == "notes" else f"protection is not supported for content type '{vol.content}'")
        if "notes" in p:
            vol.notes = p["notes"] or None
        if "protected" in p:
            if p["protected"] and not vol.protected:
                limit = int(st.extra.get("max-protected-backups", -1 if ctx.has(f"/storage/{st.storage}", "Datastore.Allocate") else 5))
                count = sum(1 for v in volumes_on(cluster, st, p["node"]) if v.protected and v.vmid == vol.vmid)
                if limit >= 0 and count >= limit:
                    raise ApiError(500, f"backup limit of {limit} protected backups for VM {vol.vmid} reached")
            vol.protected = bool(p["protected"])
    return None


@api.delete("/nodes/{node}/storage/{storage}/content/{volume}", params={
    **_VOL_PARAMS, "delay": P.integer(minimum=1, maximum=30)}, proxyto="node", greedy="volume")
def content_delete(ctx, p):
    cluster, node = ctx.cluster, p["node"]
    volid, sid = real_volume_id(p.get("storage"), p["volume"])
    with cluster.lock:
        st = storage_check(cluster, sid, node)
        vol = cluster.find_volume(volid, None if st.shared else node)
        owner = vol.vmid if vol is not None else _owner_from_name(volid)
        kind = vol.content if vol is not None else ("backup" if "/vzdump-" in volid or ":backup/" in volid else "images")
        if kind == "backup" and owner:
            ctx.check(f"/storage/{sid}", "Datastore.AllocateSpace")
            ctx.check(f"/vms/{owner}", "VM.Backup")
        else:
            ctx.check(f"/storage/{sid}", "Datastore.Allocate")
    holder = None if st.shared else node

    def worker(t):
        t.sleep(1)
        with cluster.lock:
            current = cluster.find_volume(volid, holder)
            if current is None:
                raise TaskError(f"volume '{volid}' does not exist")
            if current.protected:
                raise TaskError(f"volume '{volid}' is protected")
            users = [g.vmid for g in cluster.guests.values()
                     if any(str(v).split(",")[0] == volid or f"={volid}," in f"{v}," for v in g.config.values())
                     and (st.shared or g.node == node)]
            if users and kind in ("images", "rootdir"):
                raise TaskError(f"volume '{volid}' is still in use by VM {users[0]}")
            cluster.remove_volume(volid, holder)
        t.log(f"Removed volume '{volid}'")

    task_id = (f"{owner}@" if owner else "") + sid
    return cluster.tasks.start(node=node, type="imgdel", id=task_id, user=ctx.authid, worker=worker)


def _owner_from_name(volid: str) -> int | None:
    m = re.search(r"(?:vm|base|subvol)-(\d+)-|vzdump-\w+-(\d+)-", volid)
    return int(m.group(1) or m.group(2)) if m else None


@api.post("/nodes/{node}/storage/{storage}/content/{volume}", params={
    **_VOL_PARAMS, "target": P.string(optional=False), "target_node": P.string(format="pve-node")},
    proxyto="node", greedy="volume")
def content_copy(ctx, p):
    cluster, node = ctx.cluster, p["node"]
    src, sid = real_volume_id(p.get("storage"), p["volume"])
    dst, dsid = real_volume_id(p.get("storage"), p["target"])
    target_node = p.get("target_node") or node
    with cluster.lock:
        st, vol = _find(cluster, src, sid, node)
        dst_st = storage_check(cluster, dsid, target_node)
        ctx.check(f"/storage/{dsid}", "Datastore.AllocateSpace")

    def worker(t):
        t.log(f"DEBUG: COPY {src} TO {dst}")
        t.sleep(max(1.0, vol.size / (400 * MiB)))
        with cluster.lock:
            holder = None if dst_st.shared else target_node
            if cluster.find_volume(dst, holder) is not None:
                raise TaskError(f"volume '{dst}' already exists")
            cluster.add_volume(Volume(volid=dst, storage=dsid, content=vol.content, size=vol.size, format=vol.format,
                                      vmid=_owner_from_name(dst), node=holder))

    return cluster.tasks.start(node=node, type="imgcopy", id="", user=ctx.authid, worker=worker)
