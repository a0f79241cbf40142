"""/nodes/{node}/storage: index, per-storage status and rrddata; /cluster/ceph/status."""

from __future__ import annotations

import re
import time

from ...errors import ApiError
from ...params import P
from ...router import api
from ...state import MiB
from ..nodes import rrd_series
from .schema import CEPH_FSID, FILE_BASED
from .volumes import _check_audit, storage_status


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
