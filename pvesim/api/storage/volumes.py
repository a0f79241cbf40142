"""Helpers behind every storage route: config/status views, volume ids and paths, allocation, backup names, prune marks."""

from __future__ import annotations

import hashlib
import re
from datetime import datetime

from ...errors import ApiError, TaskError
from ...params import parse_props
from ...state import MiB, Cluster, Storage, Volume
from .schema import CEPH_FSID, FILE_BASED, PRUNE_KEYS, _CONFIG_FIELDS


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
