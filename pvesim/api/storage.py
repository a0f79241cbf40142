"""Storage: /storage config, /nodes/{node}/storage status and content, uploads, downloads,
prune, rrd, and /cluster/ceph/status (pve-semantics §8).

Helpers other modules use: `allocate_volume` (a new disk with PVE's naming rules and a
"storage full" failure), `volume_path`, `storage_status`, `prune_marks`, `parse_volume`.
"""

from __future__ import annotations

import hashlib
import random
import re
import time
import uuid
from datetime import datetime

from ..errors import ApiError, TaskError
from ..params import P, PropString, parse_props
from ..router import api
from ..state import GiB, MiB, Cluster, Storage, Volume
from .nodes import rrd_series

TYPES = ["btrfs", "cephfs", "cifs", "dir", "esxi", "iscsi", "iscsidirect", "lvm", "lvmthin", "nfs", "pbs", "rbd",
         "zfs", "zfspool"]
# What each plugin can hold, and what it holds when `content` is not given (pve-storage plugins).
SUPPORTED_CONTENT = {
    "dir": {"images", "rootdir", "vztmpl", "iso", "backup", "snippets", "import", "none"},
    "nfs": {"images", "rootdir", "vztmpl", "iso", "backup", "snippets", "import", "none"},
    "cifs": {"images", "rootdir", "vztmpl", "iso", "backup", "snippets", "import", "none"},
    "btrfs": {"images", "rootdir", "vztmpl", "iso", "backup", "snippets", "import", "none"},
    "cephfs": {"vztmpl", "iso", "backup", "snippets", "import"},
    "rbd": {"images", "rootdir"}, "zfspool": {"images", "rootdir"}, "lvmthin": {"images", "rootdir"},
    "lvm": {"images", "rootdir", "none"}, "zfs": {"images"}, "iscsi": {"images", "none"},
    "iscsidirect": {"images", "none"}, "pbs": {"backup"}, "esxi": {"import"},
}
DEFAULT_CONTENT = {
    "dir": ["images", "rootdir"], "btrfs": ["images", "rootdir"], "nfs": ["images"], "cifs": ["images"],
    "cephfs": ["backup"], "rbd": ["images"], "zfspool": ["images", "rootdir"], "lvmthin": ["images", "rootdir"],
    "lvm": ["images"], "zfs": ["images"], "iscsi": ["images"], "iscsidirect": ["images"], "pbs": ["backup"],
    "esxi": ["import"],
}
SHARED_TYPES = {"nfs", "cifs", "cephfs", "rbd", "pbs", "iscsi", "iscsidirect", "zfs", "esxi"}
# Options a storage type cannot be created without (SectionConfig: "missing value for required option").
REQUIRED = {"dir": ["path"], "btrfs": ["path"], "nfs": ["server", "export"], "cifs": ["server", "share"],
            "zfspool": ["pool"], "lvm": ["vgname"], "lvmthin": ["vgname", "thinpool"], "zfs": ["portal", "target",
            "pool", "iscsiprovider"], "iscsi": ["portal", "target"], "iscsidirect": ["portal", "target"],
            "pbs": ["server", "datastore"], "esxi": ["server", "username", "password"]}
FILE_BASED = {"dir", "nfs", "cifs", "cephfs", "btrfs"}
CEPH_FSID = "8d2b7f42-4c1e-4e6b-9a61-2f3d5e7c9b10"

PRUNE_KEYS = ["keep-all", "keep-last", "keep-hourly", "keep-daily", "keep-weekly", "keep-monthly", "keep-yearly"]
PRUNE_PROP = PropString({k: (P.boolean() if k == "keep-all" else P.integer(minimum=1)) for k in PRUNE_KEYS})

_COMMON_OPTS = {
    "blocksize": P.string(), "bwlimit": P.string(), "comstar_hg": P.string(), "comstar_tg": P.string(),
    "content": P.string(format="pve-storage-content-list"), "content-dirs": P.string(),
    "create-base-path": P.boolean(), "create-subdirs": P.boolean(), "data-pool": P.string(),
    "disable": P.boolean(), "domain": P.string(max_length=256), "encryption-key": P.string(),
    "fingerprint": P.string(pattern=r"([A-Fa-f0-9]{2}:){31}[A-Fa-f0-9]{2}"),
    "format": P.enum(["raw", "qcow2", "subvol", "vmdk"]), "fs-name": P.string(format="pve-configid"),
    "fuse": P.boolean(), "is_mountpoint": P.string(), "keyring": P.string(), "krbd": P.boolean(),
    "lio_tpg": P.string(), "master-pubkey": P.string(), "max-protected-backups": P.integer(minimum=-1),
    "mkdir": P.boolean(), "monhost": P.string(), "mountpoint": P.string(), "namespace": P.string(),
    "nocow": P.boolean(), "nodes": P.string(format="pve-node-list"), "nowritecache": P.boolean(),
    "options": P.string(), "password": P.string(max_length=256), "pool": P.string(),
    "port": P.integer(minimum=1, maximum=65535), "preallocation": P.enum(["off", "metadata", "falloc", "full"]),
    "prune-backups": P.string(prop=PRUNE_PROP), "saferemove": P.boolean(),
    "saferemove-stepsize": P.enum(["1", "2", "4", "8", "16", "32"]), "saferemove_throughput": P.string(),
    "server": P.string(), "shared": P.boolean(), "skip-cert-verification": P.boolean(),
    "smbversion": P.enum(["default", "2.0", "2.1", "3", "3.0", "3.11"]), "snapshot-as-volume-chain": P.boolean(),
    "sparse": P.boolean(), "subdir": P.string(), "tagged_only": P.boolean(), "username": P.string(),
    "zfs-base-path": P.string(),
}
_CREATE_ONLY = {
    "storage": P.storage(optional=False), "type": P.enum(TYPES, optional=False), "authsupported": P.string(),
    "base": P.string(), "export": P.string(), "iscsiprovider": P.string(), "path": P.string(),
    "portal": P.string(), "share": P.string(), "target": P.string(), "thinpool": P.string(), "vgname": P.string(),
    "datastore": P.string(),
}
# The schema types saferemove-stepsize as an integer with an enum.
_COMMON_OPTS["saferemove-stepsize"] = P.integer(enum=["1", "2", "4", "8", "16", "32"])
CREATE_PARAMS = {**_COMMON_OPTS, **_CREATE_ONLY}
UPDATE_PARAMS = {**_COMMON_OPTS, "storage": P.storage(optional=False), "delete": P.string(max_length=4096),
                 "digest": P.digest()}
_CONFIG_FIELDS = set(CREATE_PARAMS) - {"storage", "type", "content", "nodes", "disable", "shared"}


# ---- helpers ---------------------------------------------------------------------------------

def install(cluster: Cluster, scenario: dict) -> None:
    with cluster.lock:
        cluster.storage_digest = _digest(cluster)


def _digest(cluster: Cluster) -> str:
    text = "|".join(f"{s.storage}:{s.type}:{','.join(s.content)}:{s.enabled}:{s.nodes}:{sorted(s.extra.items())}"
                    for s in cluster.storages.values())
    return hashlib.sha1(text.encode()).hexdigest()


def config_dict(cluster: Cluster, st: Storage) -> dict:
    """The storage as `GET /storage/{storage}` shows it."""
    out = {"storage": st.storage, "type": st.type, "content": ",".join(sorted(st.content)),
           "digest": getattr(cluster, "storage_digest", "")}
    if st.path:
        out["path"] = st.path
    for key, value in st.extra.items():
        if key in _CONFIG_FIELDS and key != "path":
            out[key] = value
    if st.nodes is not None:
        out["nodes"] = ",".join(st.nodes)
    if st.shared:
        out["shared"] = 1
    if not st.enabled:
        out["disable"] = 1
    if st.type == "dir" and st.storage == "local" and "prune-backups" not in out:
        out["prune-backups"] = "keep-all=1"
    return out


def storage_status(cluster: Cluster, st: Storage, node: str) -> dict:
    """One entry of `GET /nodes/{node}/storage` (without used_fraction)."""
    out = {"type": st.type, "content": ",".join(sorted(st.content)), "shared": 1 if st.shared else 0,
           "enabled": 1 if st.enabled else 0, "active": 1 if st.enabled else 0}
    if st.enabled:
        used = min(cluster.storage_used(st.storage, None if st.shared else node), st.total)
        out.update({"total": st.total, "used": used, "avail": st.total - used})
    return out


def storage_check(cluster: Cluster, storage_id: str, node: str) -> Storage:
    """PVE's storage_check_enabled: does not exist / not available on node / disabled."""
    return cluster.storage(storage_id, node)


def base_path(st: Storage) -> str:
    if st.path:
        return st.path
    if st.type in ("nfs", "cifs", "cephfs"):
        return f"/mnt/pve/{st.storage}"
    return ""


def volume_path(st: Storage, volname: str) -> str:
    """Where PVE would say the volume lives (GET content/{volume} `path`)."""
    if st.type in FILE_BASED:
        root = base_path(st)
        kind, _, rest = volname.partition("/")
        if kind == "iso":
            return f"{root}/template/iso/{rest}"
        if kind == "vztmpl":
            return f"{root}/template/cache/{rest}"
        if kind == "backup":
            return f"{root}/dump/{rest}"
        if kind in ("snippets", "import"):
            return f"{root}/{kind}/{rest}"
        return f"{root}/images/{volname}"
    name = volname.split("/")[-1]
    if st.type == "rbd":
        return f"/dev/rbd-pve/{CEPH_FSID}/{st.extra.get('pool', 'rbd')}/{name}"
    if st.type == "zfspool":
        pool = st.extra.get("pool", "rpool/data")
        return f"/{pool}/{name}" if name.startswith("subvol-") else f"/dev/zvol/{pool}/{name}"
    if st.type in ("lvm", "lvmthin"):
        return f"/dev/{st.extra.get('vgname', 'pve')}/{name}"
    return f"/dev/{name}"


def parse_volume(volid: str) -> tuple[str, str]:
    storage_id, sep, volname = volid.partition(":")
    if not sep or not storage_id or not volname:
        raise ApiError(400, "Parameter verification failed.", {"volume": f"unable to parse volume ID '{volid}'"})
    return storage_id, volname


def real_volume_id(storage_id: str | None, volume: str) -> tuple[str, str]:
    """`volume` may be a full volid or a name on the URL's storage (Content.pm real_volume_id)."""
    if ":" in volume:
        sid, _ = parse_volume(volume)
        if storage_id and sid != storage_id:
            raise ApiError(400, "Parameter verification failed.",
                           {"volume": f"storage ID mismatch ({sid} != {storage_id})"})
        return volume, sid
    if not storage_id:
        raise ApiError(400, "Parameter verification failed.", {"volume": "no storage specified - incomplete volume ID"})
    return f"{storage_id}:{volume}", storage_id


def _space_error(st: Storage, volname: str, size: int, avail: int) -> str:
    name = volname.split("/")[-1]
    if st.type in FILE_BASED:
        return (f"unable to create image: qemu-img: {volume_path(st, volname)}: "
                f"Could not preallocate data for the new file: No space left on device")
    if st.type == "zfspool":
        return f"zfs error: cannot create '{st.extra.get('pool', 'rpool/data')}/{name}': out of space"
    if st.type == "rbd":
        return f"rbd create '{name}' error: rbd: create error: (28) No space left on device"
    if st.type in ("lvm", "lvmthin"):
        vg = st.extra.get("vgname", "pve")
        need, free = -(-size // (4 * MiB)), max(avail, 0) // (4 * MiB)
        return f"lvcreate '{vg}/{name}' error:   Volume group \"{vg}\" has insufficient free space ({free} extents): {need} required."
    return f"unable to allocate '{name}': No space left on device"


def allocate_volume(cluster: Cluster, storage_id: str, node: str, vmid: int, size: int, fmt: str | None = None,
                    name: str | None = None, content: str = "images") -> Volume:
    """Allocate a disk like PVE's vdisk_alloc (caller holds cluster.lock).

    Guarantees: the storage is checked for the node (PVE's three errors), the name follows
    `vm-<vmid>-disk-N` (`subvol-` for CT volumes on zfspool) or the given one, and running out
    of space fails with the plugin's own message (ApiError 500) without creating anything.
    """
    st = storage_check(cluster, storage_id, node)
    holder = None if st.shared else node
    if st.type in FILE_BASED:
        fmt = fmt or "raw"
        if fmt not in ("raw", "qcow2", "vmdk"):
            raise ApiError(500, f"unsupported format '{fmt}'")
    else:
        fmt = fmt or ("subvol" if st.type == "zfspool" and content == "rootdir" else "raw")
        if fmt not in ("raw", "subvol"):
            raise ApiError(500, f"unsupported format '{fmt}'")
    if name:
        if not re.match(rf"^(vm|base|subvol)-{vmid}-", name):
            raise ApiError(500, f"illegal name '{name}' - should be 'vm-{vmid}-*'")
        if st.type in FILE_BASED:
            m = re.search(r"\.(raw|qcow2|vmdk)$", name)
            if not m:
                raise ApiError(500, f"unable to parse volume filename '{name}'")
            if m.group(1) != fmt:
                raise ApiError(500, f"illegal name '{name}' - wrong extension for format ('{m.group(1)} != {fmt}')")
            volname = f"{vmid}/{name}"
        else:
            volname = name
        if cluster.find_volume(f"{storage_id}:{volname}", holder) is not None:
            raise ApiError(500, f"disk image '{volume_path(st, volname)}' already exists")
    else:
        prefix = "subvol" if fmt == "subvol" else "vm"
        volid = cluster.alloc_disk_name(storage_id, vmid, holder, prefix=prefix, fmt=fmt)
        volname = volid.split(":", 1)[1]
    used = cluster.storage_used(storage_id, holder)
    if used + size > st.total:
        raise ApiError(500, _space_error(st, volname, size, st.total - used))
    return cluster.add_volume(Volume(volid=f"{storage_id}:{volname}", storage=storage_id, content=content,
                                     size=size, format=fmt, vmid=vmid, node=holder))


def task_allocate(cluster: Cluster, *args, **kw) -> Volume:
    """allocate_volume for task workers: failures become the task's error."""
    try:
        return allocate_volume(cluster, *args, **kw)
    except ApiError as exc:
        raise TaskError(exc.message) from None


def volumes_on(cluster: Cluster, st: Storage, node: str) -> list[Volume]:
    return sorted((v for v in cluster.volumes.values()
                   if v.storage == st.storage and (st.shared or v.node == node)), key=lambda v: v.volid)


BACKUP_RE = re.compile(r"vzdump-(qemu|lxc|openvz)-(\d+)-(\d{4})_(\d{2})_(\d{2})-(\d{2})_(\d{2})_(\d{2})\.")


def backup_subtype(vol: Volume) -> str | None:
    m = BACKUP_RE.search(vol.volid)
    return m.group(1) if m else None


def backup_ctime(vol: Volume) -> int:
    """Backups carry their time in the file name; PVE reports that as ctime."""
    m = BACKUP_RE.search(vol.volid)
    if not m:
        return vol.ctime
    y, mo, d, h, mi, se = (int(x) for x in m.groups()[2:])
    return int(datetime(y, mo, d, h, mi, se).timestamp())


def content_item(vol: Volume) -> dict:
    item = vol.to_api()
    if vol.content == "backup":
        item["ctime"] = backup_ctime(vol)
    if vol.notes is not None:
        item["notes"] = vol.notes.split("\n", 1)[0]
    if vol.content == "backup":
        sub = backup_subtype(vol)
        if sub:
            item["subtype"] = sub
    return item


def prune_marks(backups: list[Volume], options: dict) -> list[dict]:
    """PVE's prune selection: per guest, newest first, keep-last then hourly..yearly buckets."""
    groups: dict[tuple, list[dict]] = {}
    out = []
    for vol in backups:
        m = BACKUP_RE.search(vol.volid)
        entry = {"volid": vol.volid, "ctime": backup_ctime(vol), "type": m.group(1) if m else "unknown"}
        if vol.vmid is not None:
            entry["vmid"] = vol.vmid
        out.append(entry)
        if vol.protected:
            entry["mark"] = "protected"
        elif not m:
            entry["mark"] = "renamed"
        else:
            groups.setdefault((entry["type"], vol.vmid), []).append(entry)
    keep_all = int(options.get("keep-all", 0)) or not any(int(options.get(k, 0)) for k in PRUNE_KEYS[1:])
    fmt = {"keep-hourly": "%Y/%m/%d/%H", "keep-daily": "%Y/%m/%d", "keep-weekly": "%G/%V", "keep-monthly": "%Y/%m",
           "keep-yearly": "%Y"}
    for entries in groups.values():
        entries.sort(key=lambda e: -e["ctime"])
        if keep_all:
            for e in entries:
                e["mark"] = "keep"
            continue
        for key in PRUNE_KEYS[1:]:
            count = int(options.get(key, 0))
            if not count:
                continue
            if key == "keep-last":
                idf = lambda e: e["volid"]  # noqa: E731 - every backup is its own bucket
            else:
                idf = lambda e, f=fmt[key]: datetime.fromtimestamp(e["ctime"]).strftime(f)  # noqa: E731
            already = {idf(e) for e in entries if e.get("mark") == "keep"}
            newly: set[str] = set()
            for e in entries:
                if "mark" in e or idf(e) in already:
                    continue
                if idf(e) not in newly:
                    if len(newly) >= count:
                        break
                    newly.add(idf(e))
                    e["mark"] = "keep"
                else:
                    e["mark"] = "remove"
        for e in entries:
            e.setdefault("mark", "remove")
    return out


def prune_options(cluster: Cluster, st: Storage, text: str | None) -> dict:
    spec = text if text is not None else st.extra.get("prune-backups", "keep-all=1")
    return {k: int(v) for k, v in parse_props(spec).items()}


def _check_audit(ctx, storage_id: str) -> None:
    ctx.check(f"/storage/{storage_id}", "Datastore.Audit", "Datastore.AllocateSpace", any=True)


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


# ---- /nodes/{node}/storage ---------------------------------------------------------------------

@api.get("/nodes/{node}/storage", params={
    "node": P.node(), "content": P.string(format="pve-storage-content-list"), "enabled": P.boolean(),
    "format": P.boolean(), "storage": P.storage(), "target": P.string(format="pve-node"),
}, proxyto="node")
def node_storage_index(ctx, p):
    cluster, node = ctx.cluster, p["node"]
    wanted = {c for c in re.split(r"[,;\s]+", p.get("content", "")) if c}
    target = p.get("target")
    if target in (node, "localhost"):
        target = None
    with cluster.lock:
        info = {sid: st for sid, st in cluster.storages.items()
                if (st.nodes is None or node in st.nodes) and (not wanted or wanted & set(st.content))}
        if p.get("storage") and p["storage"] not in info:
            raise ApiError(400, "Parameter verification failed.", {"storage": "No such storage."})
        out = []
        for sid, st in info.items():
            if not (ctx.has(f"/storage/{sid}", "Datastore.Audit") or ctx.has(f"/storage/{sid}", "Datastore.AllocateSpace")):
                continue
            if p.get("storage") and p["storage"] != sid:
                continue
            if p.get("enabled") and not st.enabled:
                continue
            if target and not (st.shared and (st.nodes is None or target in st.nodes)):
                continue
            item = {"storage": sid, **storage_status(cluster, st, node)}
            if item.get("total"):
                item["used_fraction"] = item["used"] / item["total"]
            if p.get("format"):
                supported = ["raw", "qcow2", "vmdk"] if st.type in FILE_BASED else (["raw", "subvol"] if st.type == "zfspool" else ["raw"])
                item["format"] = [{f: 1 for f in supported}, "raw" if st.type not in FILE_BASED else "qcow2"]
                item["formats"] = {"supported": supported, "default": "raw" if st.type not in FILE_BASED else "qcow2"}
            out.append(item)
        return out


@api.get("/nodes/{node}/storage/{storage}", params={"node": P.node(), "storage": P.storage(optional=False)}, proxyto="node")
def node_storage_dir(ctx, p):
    _check_audit(ctx, p["storage"])
    return [{"subdir": s} for s in ("status", "content", "upload", "download-url", "rrd", "rrddata", "prunebackups",
                                    "import-metadata", "file-restore")]


@api.get("/nodes/{node}/storage/{storage}/status", params={"node": P.node(), "storage": P.storage(optional=False)},
         proxyto="node")
def node_storage_status(ctx, p):
    _check_audit(ctx, p["storage"])
    cluster = ctx.cluster
    with cluster.lock:
        st = cluster.storages.get(p["storage"])
        if st is None or not (st.nodes is None or p["node"] in st.nodes):
            raise ApiError(400, "Parameter verification failed.", {"storage": "No such storage."})
        return storage_status(cluster, st, p["node"])


@api.get("/nodes/{node}/storage/{storage}/rrddata", params={
    "node": P.node(), "storage": P.storage(optional=False),
    "timeframe": P.enum(["hour", "day", "week", "month", "year"], optional=False), "cf": P.enum(["AVERAGE", "MAX"]),
}, proxyto="node")
def node_storage_rrddata(ctx, p):
    _check_audit(ctx, p["storage"])
    cluster = ctx.cluster
    with cluster.lock:
        st = cluster.storages.get(p["storage"])
        if st is None or not st.on_node(p["node"]):
            return []
        status = storage_status(cluster, st, p["node"])
    seed = sum(map(ord, st.storage))
    return rrd_series(seed, p["timeframe"], {"total": (status["total"], 0), "used": (status["used"], status["used"] * 0.01)})


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


# ---- upload / download-url ---------------------------------------------------------------------

_EXTENSIONS = {"iso": (r"\.(iso|img)$", "missing '.iso' or '.img' extension"),
               "vztmpl": (r"\.tar\.([gx]z|zst|bz2)$", "missing '.tar.gz', '.tar.xz' or '.tar.zst' extension"),
               "import": (r"\.(ova|ovf|qcow2|raw|vmdk)$", "invalid filename or wrong extension")}


def _target_file(ctx, p: dict) -> tuple[Storage, str, str]:
    cluster = ctx.cluster
    st = storage_check(cluster, p["storage"], p["node"])
    content = p["content"]
    filename = re.sub(r"[^-a-zA-Z0-9_.]", "_", re.sub(r"^.*[/\\]", "", p["filename"].strip()))
    pattern, message = _EXTENSIONS[content]
    if not re.search(pattern, filename, re.I):
        raise ApiError(400, "Parameter verification failed.", {"filename": message})
    if st.type not in FILE_BASED:
        raise ApiError(500, f"can't upload to storage type '{st.type}'")
    if content not in st.content:
        raise ApiError(500, f"storage '{st.storage}' does not support '{content}' content")
    volname = f"{content}/{filename}"
    return st, filename, volname


def _checksum_ok(p: dict, data: bytes | None) -> tuple[str, str] | None:
    """(algorithm, expected) when a checksum was given; raises 400 on a half-given pair."""
    if bool(p.get("checksum")) != bool(p.get("checksum-algorithm")):
        missing = "checksum-algorithm" if p.get("checksum") else "checksum"
        raise ApiError(400, "Parameter verification failed.", {missing: "missing parameter"})
    if p.get("checksum"):
        return p["checksum-algorithm"], p["checksum"].strip().lower()
    return None


_UPLOAD_PARAMS = {
    "node": P.node(), "storage": P.storage(optional=False), "content": P.enum(["iso", "vztmpl", "import"], optional=False),
    "filename": P.string(optional=False, max_length=255), "checksum": P.string(),
    "checksum-algorithm": P.enum(["md5", "sha1", "sha224", "sha256", "sha384", "sha512"]),
}


@api.post("/nodes/{node}/storage/{storage}/upload", params={
    **_UPLOAD_PARAMS, "tmpfilename": P.string(pattern=r"/var/tmp/pveupload-[0-9a-f]+")}, proxyto="node")
def upload(ctx, p):
    """The simulator takes no file body: the stored file's bytes are its name (see upload_checksum)."""
    ctx.check(f"/storage/{p['storage']}", "Datastore.AllocateTemplate")
    cluster, node = ctx.cluster, p["node"]
    body = p["filename"].encode()
    check = _checksum_ok(p, body)
    with cluster.lock:
        st, filename, volname = _target_file(ctx, p)
    size = random.Random(p["filename"]).randint(3, 900) * MiB
    tmp = f"/var/tmp/pveupload-{uuid.uuid4().hex[:32]}"
    dest = volume_path(st, volname)

    def worker(t):
        t.log(f"starting file import from: {tmp}")
        if check:
            algo, expected = check
            t.log(f"calculating checksum of uploaded file '{tmp}'...")
            actual = hashlib.new(algo, body).hexdigest()
            if actual != expected:
                raise TaskError(f"checksum mismatch: got '{actual}' != expect '{expected}'")
            t.log("checksum verified")
        t.log(f"target node: {node}")
        t.log(f"target file: {dest}")
        t.log(f"file size is: {size}")
        t.log(f"command: cp -- {tmp} {dest}")
        t.sleep(max(0.5, size / (500 * MiB)))
        _store_file(cluster, st, node, volname, p["content"], size)
        t.log("finished file import successfully")

    return cluster.tasks.start(node=node, type="imgcopy", id="", user=ctx.authid, worker=worker)


def _store_file(cluster: Cluster, st: Storage, node: str, volname: str, content: str, size: int) -> None:
    holder = None if st.shared else node
    with cluster.lock:
        volid = f"{st.storage}:{volname}"
        fmt = "iso" if content == "iso" else ("tzst" if volname.endswith(".zst") else "txz" if volname.endswith(".xz") else "tgz") \
            if content == "vztmpl" else volname.rsplit(".", 1)[-1]
        cluster.remove_volume(volid, holder)  # PVE overwrites an existing file
        cluster.add_volume(Volume(volid=volid, storage=st.storage, content=content, size=size, format=fmt, node=holder))


def _human(n: float) -> str:
    for unit, div in (("G", GiB), ("M", MiB), ("K", 1024)):
        if n >= div:
            return f"{n / div:.1f}{unit}"
    return f"{int(n)}"


@api.post("/nodes/{node}/storage/{storage}/download-url", params={
    **_UPLOAD_PARAMS, "url": P.string(optional=False, pattern=r"https?://.*"), "verify-certificates": P.boolean(),
    "compression": P.string()}, proxyto="node")
def download_url(ctx, p):
    ctx.check(f"/storage/{p['storage']}", "Datastore.AllocateTemplate")
    if not (ctx.has("/", "Sys.Audit") and ctx.has("/", "Sys.Modify")) and not ctx.has(f"/nodes/{p['node']}", "Sys.AccessNetwork"):
        raise ApiError(403, f"Permission check failed (/nodes/{p['node']}, Sys.AccessNetwork)")
    cluster, node, url = ctx.cluster, p["node"], p["url"]
    check = _checksum_ok(p, None)
    if p.get("compression") and p["compression"] not in ("gz", "lzo", "zst", "bz2"):
        raise ApiError(400, "Parameter verification failed.",
                       {"compression": f"value '{p['compression']}' does not have a value in the enumeration 'gz, lzo, zst, bz2'"})
    with cluster.lock:
        st, filename, volname = _target_file(ctx, p)
    # Deterministic "remote file": size from the URL, content = the URL's bytes repeated.
    rnd = random.Random(url)
    size = rnd.randint(40, 900) * MiB if p["content"] == "iso" else rnd.randint(3, 200) * MiB
    payload = url.encode()
    dest = volume_path(st, volname)
    tmp = dest.rsplit("/", 1)[0] + f"/{filename}.tmp.{rnd.randint(1000, 99999)}"

    def worker(t):
        t.log(f"downloading {url} to {dest}")
        t.log(f"--{time.strftime('%Y-%m-%d %H:%M:%S')}--  {url}")
        host = re.sub(r"^https?://([^/:]+).*$", r"\1", url)
        if host.endswith(".invalid") or host == "unreachable.example":
            raise TaskError(f"download failed: wget: unable to resolve host address '{host}'")
        t.log(f"Resolving {host} ({host})... 203.0.113.{rnd.randint(1, 254)}")
        t.log(f"Connecting to {host}|203.0.113.10|:443... connected.")
        t.log("HTTP request sent, awaiting response... 200 OK")
        t.log(f"Length: {size} ({_human(size)}) [application/octet-stream]")
        t.log(f"Saving to: '{tmp}'")
        speed = 110 * MiB
        steps = 10
        for i in range(1, steps + 1):
            t.sleep(size / speed / steps)
            done = size * i // steps
            t.log(f"{done // 1024:>8}K {'.' * 10 * i:<100} {i * 100 // steps:>3}% {_human(speed)} {max(0, (steps - i)) * 1}s")
        t.log(f"{time.strftime('%Y-%m-%d %H:%M:%S')} ({_human(speed)}/s) - '{tmp}' saved [{size}/{size}]")
        if check:
            algo, expected = check
            t.log(f"calculating checksum of '{tmp}'...")
            actual = hashlib.new(algo, payload).hexdigest()
            if actual != expected:
                t.log(f"removing temporary file '{tmp}'")
                raise TaskError(f"checksum mismatch: got '{actual}' != expect '{expected}'")
            t.log("checksum verified")
        t.log(f"rename '{tmp}' to '{dest}'")
        _store_file(cluster, st, node, volname, p["content"], size)

    return cluster.tasks.start(node=node, type="download", id=st.storage, user=ctx.authid, worker=worker)


def fake_download_checksum(url: str, algorithm: str) -> str:
    """The checksum download-url expects for `url` (the simulated file's bytes are the URL)."""
    return hashlib.new(algorithm, url.encode()).hexdigest()


# ---- prune -------------------------------------------------------------------------------------

_PRUNE_PARAMS = {"node": P.node(), "storage": P.storage(optional=False), "prune-backups": P.string(prop=PRUNE_PROP),
                 "type": P.enum(["qemu", "lxc"]), "vmid": P.vmid(optional=True)}


def _prune_selection(ctx, p) -> tuple[Storage, list[dict]]:
    cluster = ctx.cluster
    st = storage_check(cluster, p["storage"], p["node"])
    if "backup" not in st.content:
        raise ApiError(500, f"storage '{st.storage}' does not support backups")
    backups = [v for v in volumes_on(cluster, st, p["node"]) if v.content == "backup"
               and (not p.get("vmid") or v.vmid == p["vmid"])
               and (not p.get("type") or backup_subtype(v) == p["type"])]
    return st, prune_marks(backups, prune_options(cluster, st, p.get("prune-backups")))


@api.get("/nodes/{node}/storage/{storage}/prunebackups", params=_PRUNE_PARAMS, proxyto="node")
def prune_dryrun(ctx, p):
    _check_audit(ctx, p["storage"])
    with ctx.cluster.lock:
        return _prune_selection(ctx, p)[1]


@api.delete("/nodes/{node}/storage/{storage}/prunebackups", params=_PRUNE_PARAMS, proxyto="node")
def prune_run(ctx, p):
    cluster = ctx.cluster
    if p.get("vmid"):
        ctx.check(f"/storage/{p['storage']}", "Datastore.AllocateSpace")
        ctx.check(f"/vms/{p['vmid']}", "VM.Backup")
    else:
        ctx.check(f"/storage/{p['storage']}", "Datastore.Allocate")
    with cluster.lock:
        st, marks = _prune_selection(ctx, p)
    holder = None if st.shared else p["node"]

    def worker(t):
        t.sleep(0.5)
        removed = 0
        for entry in marks:
            if entry["mark"] != "remove":
                continue
            t.log(f"info: removing backup '{entry['volid']}'")
            with cluster.lock:
                cluster.remove_volume(entry["volid"], holder)
            removed += 1
        t.log(f"info: pruned {removed} backup(s)")

    task_id = (f"{p['vmid']}@" if p.get("vmid") else "") + st.storage
    return cluster.tasks.start(node=p["node"], type="prunebackups", id=task_id, user=ctx.authid, worker=worker)


# ---- ceph --------------------------------------------------------------------------------------

@api.get("/cluster/ceph/status", params={})
def ceph_status(ctx, p):
    ctx.check("/", "Sys.Audit", "Datastore.Audit", any=True)
    cluster = ctx.cluster
    with cluster.lock:
        rbd = [st for st in cluster.storages.values() if st.type in ("rbd", "cephfs")]
        if not rbd:
            raise ApiError(500, "binary not installed: /usr/bin/ceph-mon")
        nodes = sorted(cluster.nodes.values(), key=lambda n: n.nodeid)
        up = [n for n in nodes if n.online]
        total = sum(st.total for st in rbd if st.type == "rbd") * 3  # raw capacity with size=3 replication
        used = sum(cluster.storage_used(st.storage, None) for st in rbd) * 3
    osds_per_node = 4
    num_osds = osds_per_node * len(nodes)
    up_osds = osds_per_node * len(up)
    quorum = [n.name for n in up]
    checks: dict = {}
    if len(up) < len(nodes):
        down = [n.name for n in nodes if not n.online]
        checks["OSD_HOST_DOWN"] = {"severity": "HEALTH_WARN", "muted": False,
                                   "summary": {"message": f"{len(down)} host ({osds_per_node * len(down)} osds) down", "count": len(down)},
                                   "detail": [{"message": f"host {d} (root=default) ({osds_per_node} osds) is down"} for d in down]}
        checks["MON_DOWN"] = {"severity": "HEALTH_WARN", "muted": False,
                              "summary": {"message": f"{len(down)}/{len(nodes)} mons down, quorum {','.join(quorum)}", "count": len(down)},
                              "detail": [{"message": f"mon.{d} (rank {cluster.nodes[d].nodeid - 1}) addr [v2:{cluster.nodes[d].ip}:3300/0,v1:{cluster.nodes[d].ip}:6789/0] is down (out of quorum)"} for d in down]}
    pgs = 129
    status = "HEALTH_OK" if not checks else "HEALTH_WARN"
    if len(up) * 2 <= len(nodes):
        status = "HEALTH_ERR"
    now = int(time.time())
    return {
        "fsid": CEPH_FSID,
        "health": {"status": status, "checks": checks, "mutes": []},
        "election_epoch": 42, "quorum": [n.nodeid - 1 for n in up], "quorum_names": quorum,
        "quorum_age": 86400 * 3,
        "monmap": {"epoch": 3, "min_mon_release_name": "squid", "num_mons": len(nodes)},
        "osdmap": {"epoch": 512, "num_osds": num_osds, "num_up_osds": up_osds, "osd_up_since": now - 86400 * 3,
                   "num_in_osds": num_osds, "osd_in_since": now - 86400 * 30, "num_remapped_pgs": 0},
        "pgmap": {"pgs_by_state": [{"state_name": "active+clean" if not checks else "active+undersized+degraded",
                                    "count": pgs}],
                  "num_pgs": pgs, "num_pools": 2, "num_objects": max(1, used // (4 * MiB)),
                  "data_bytes": used // 3, "bytes_used": used, "bytes_avail": total - used, "bytes_total": total,
                  "read_bytes_sec": 48_000_000, "write_bytes_sec": 21_000_000, "read_op_per_sec": 950,
                  "write_op_per_sec": 410},
        "fsmap": {"epoch": 1, "by_rank": [], "up:standby": 0},
        "mgrmap": {"available": True, "num_standbys": max(0, len(up) - 1), "modules": ["iostat", "nfs", "restful"],
                   "services": {}},
        "servicemap": {"epoch": 9, "modified": time.strftime("%Y-%m-%dT%H:%M:%S.000000+0000", time.gmtime(now - 3600)),
                       "services": {}},
        "progress_events": {},
    }
