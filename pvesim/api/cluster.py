"""/cluster: status, resources, nextid, tasks, log, options (pve-semantics §3.1, §3.6, §4.1)."""

from __future__ import annotations

import math
import re
import time

from ..errors import ApiError
from ..params import P, parse_props
from ..router import Result, api
from ..scenario import parse_size
from ..state import Cluster, Guest, Node

RRD_STEP = 10  # pvestatd refreshes status every 10 s: values change in steps, not per request


def _wave(seed: int, period: float = 300.0) -> float:
    """A slow, deterministic oscillation in [0, 1] that changes once per RRD step."""
    t = int(time.time() // RRD_STEP) * RRD_STEP
    return 0.5 + 0.5 * math.sin(t / period + seed)


_DISK_KEY = re.compile(r"(scsi|virtio|sata|ide|efidisk|tpmstate)\d+|rootfs")
_size_cache: dict[str, int] = {}


def _disk_value_size(value: str) -> int:
    """Size of one disk config value ('ceph-rbd:vm-100-disk-0,size=32G'), memoized by the string."""
    size = _size_cache.get(value)
    if size is None:
        text = parse_props(value).get("size")
        size = parse_size(text) if text else 0
        if len(_size_cache) > 200_000:
            _size_cache.clear()
        _size_cache[value] = size
    return size


def guest_disk_size(guest: Guest) -> int:
    """maxdisk: the root disk for CTs, the boot disk (first disk) for VMs."""
    keys = ["rootfs"] if guest.type == "lxc" else sorted(k for k in guest.config if _DISK_KEY.fullmatch(k))
    for key in keys:
        value = str(guest.config.get(key, ""))
        if not value or "media=cdrom" in value or "cloudinit" in value:
            continue
        size = _disk_value_size(value)
        if size:
            return size
    return 0


def guest_usage(cluster: Cluster, guest: Guest) -> dict:
    running = guest.status == "running" and cluster.nodes[guest.node].online
    maxmem = guest.maxmem()
    if not running:
        return {"cpu": 0, "mem": 0, "netin": 0, "netout": 0, "diskread": 0, "diskwrite": 0, "uptime": 0}
    uptime = guest.uptime
    cpu = round(guest.cpu_load * (0.6 + 0.8 * _wave(guest.vmid)), 4)
    mem = int(maxmem * guest.mem_fraction * (0.85 + 0.15 * _wave(guest.vmid * 7)))
    return {"cpu": cpu, "mem": mem, "uptime": uptime, "netin": uptime * 40_000 + guest.vmid,
            "netout": uptime * 25_000 + guest.vmid, "diskread": uptime * 90_000, "diskwrite": uptime * 60_000}


def guest_resource(cluster: Cluster, guest: Guest, pools: dict[int, str] | None = None) -> dict:
    node = cluster.nodes[guest.node]
    usage = guest_usage(cluster, guest)
    status = guest.qmpstatus if guest.type == "qemu" else guest.status
    if not node.online:
        status = "unknown"
    item = {
        "id": f"{guest.type}/{guest.vmid}", "type": guest.type, "vmid": guest.vmid, "name": guest.name,
        "node": guest.node, "status": status, "template": 1 if guest.is_template else 0,
        "maxcpu": guest.maxcpu(), "maxmem": guest.maxmem(), "maxdisk": guest_disk_size(guest),
        "disk": int(guest_disk_size(guest) * 0.4) if guest.type == "lxc" and usage["uptime"] else 0,
        **usage,
    }
    if guest.type == "qemu":
        item["memhost"] = usage["mem"]
    if guest.lock:
        item["lock"] = guest.lock
    if guest.config.get("tags"):
        item["tags"] = guest.config["tags"]
    pool = pools.get(guest.vmid) if pools is not None else pool_of(cluster, guest.vmid)
    if pool:
        item["pool"] = pool
    hastate = cluster.ha.service_state(f"{'vm' if guest.type == 'qemu' else 'ct'}:{guest.vmid}") if cluster.ha else None
    if hastate:
        item["hastate"] = hastate
    return item


def pool_of(cluster: Cluster, vmid: int) -> str | None:
    for poolid, pool in cluster.pools.items():
        if vmid in pool["vms"]:
            return poolid
    return None


def node_usage(cluster: Cluster, node: Node, running: list[Guest] | None = None) -> dict:
    if running is None:
        running = [g for g in cluster.guests.values() if g.node == node.name and g.status == "running"]
    cpu = min(1.0, node.base_load + sum(g.cpu_load * g.maxcpu() for g in running) / max(node.maxcpu, 1) * 0.5)
    mem = int(4 * 1024 ** 3 + sum(g.maxmem() * g.mem_fraction for g in running))
    return {"cpu": round(cpu * (0.9 + 0.2 * _wave(node.nodeid)), 4), "mem": min(mem, node.maxmem),
            "disk": int(node.maxdisk * 0.18)}


def member_online(cluster: Cluster, node: Node) -> bool:
    """Whether `node` is an online corosync member as the answering node (cluster.local_node) sees it.

    Proxmox answers /cluster/status, /cluster/resources and /nodes from the answering node's pmxcfs
    membership (PVE::Cluster::get_members, used by API2Tools::extract_node_stats): a node that is
    powered off, or in another corosync partition than the answering node, is `offline` there even
    though it may be running; the answering node always sees itself online."""
    if not node.online:
        return False
    if node.name == cluster.local_node:
        return True
    local = cluster.nodes.get(cluster.local_node)
    return not node.partitioned and not (local is not None and local.partitioned)


def node_resource(cluster: Cluster, node: Node, stats: bool = True, running: list[Guest] | None = None) -> dict:
    """A node as /cluster/resources lists it: `offline`, without usage, when the answering node does
    not see it as a member (powered off or partitioned away, see member_online); the maximums stay,
    as Proxmox keeps a node's last status sample for a few minutes."""
    online = member_online(cluster, node)
    item = {"id": f"node/{node.name}", "type": "node", "node": node.name,
            "status": "online" if online else "offline", "level": node.level, "cgroup-mode": 2}
    if stats and online:
        item.update({"maxcpu": node.maxcpu, "maxmem": node.maxmem, "maxdisk": node.maxdisk, "uptime": node.uptime,
                     **node_usage(cluster, node, running)})
    elif stats:
        item.update({"maxcpu": node.maxcpu, "maxmem": node.maxmem, "maxdisk": node.maxdisk})
    hastate = cluster.ha.node_state(node.name) if cluster.ha else None
    if hastate:
        item["hastate"] = hastate
    return item


def storage_resource(cluster: Cluster, storage, node: Node, used_map: dict | None = None) -> dict:
    key = (storage.storage, None if storage.shared else node.name)
    used = used_map.get(key, 0) if used_map is not None else cluster.storage_used(*key)
    return {"id": f"storage/{node.name}/{storage.storage}", "type": "storage", "storage": storage.storage,
            "node": node.name, "plugintype": storage.type, "status": "available" if node.online else "unknown",
            "shared": 1 if storage.shared else 0, "content": ",".join(storage.content),
            "disk": used, "maxdisk": storage.total}


@api.get("/cluster/resources", params={"type": P.enum(["vm", "storage", "node", "sdn"])})
def resources(ctx, p):
    cluster: Cluster = ctx.cluster
    kind = p.get("type")
    out = []
    with cluster.lock:
        if kind in (None, "node"):
            running: dict[str, list[Guest]] = {}
            for guest in cluster.guests.values():
                if guest.status == "running":
                    running.setdefault(guest.node, []).append(guest)
            for node in cluster.nodes.values():
                out.append(node_resource(cluster, node, stats=ctx.has(f"/nodes/{node.name}", "Sys.Audit"),
                                         running=running.get(node.name, [])))
        if kind in (None, "vm"):
            pools = {vmid: poolid for poolid, pool in cluster.pools.items() for vmid in pool["vms"]}
            for guest in cluster.guests.values():
                if ctx.has(f"/vms/{guest.vmid}", "VM.Audit"):
                    out.append(guest_resource(cluster, guest, pools))
        if kind in (None, "storage"):
            used_map: dict = {}
            for vol in cluster.volumes.values():  # one pass instead of one per storage and node
                st = cluster.storages.get(vol.storage)
                key = (vol.storage, None if st is None or st.shared else vol.node)
                used_map[key] = used_map.get(key, 0) + vol.size
            for storage in cluster.storages.values():
                if not ctx.has(f"/storage/{storage.storage}", "Datastore.Audit"):
                    continue
                for node in cluster.nodes.values():
                    if storage.on_node(node.name):
                        out.append(storage_resource(cluster, storage, node, used_map))
        if kind is None:
            for poolid, pool in cluster.pools.items():
                if ctx.has(f"/pool/{poolid}", "Pool.Audit"):
                    members = [cluster.guests[v] for v in pool["vms"] if v in cluster.guests]
                    running = [g for g in members if g.status == "running"]
                    out.append({"id": f"/pool/{poolid}", "type": "pool", "pool": poolid,
                                "cpu": round(sum(g.cpu_load for g in running), 4), "maxcpu": sum(g.maxcpu() for g in running),
                                "mem": sum(int(g.maxmem() * g.mem_fraction) for g in running),
                                "maxmem": sum(g.maxmem() for g in running), "uptime": 0})
    return out


@api.get("/cluster/status", params={})
def status(ctx, p):
    ctx.check("/", "Sys.Audit")
    cluster: Cluster = ctx.cluster
    with cluster.lock:
        out = [{"type": "cluster", "id": "cluster", "name": cluster.name, "nodes": len(cluster.nodes),
                "version": cluster.config_version, "quorate": 1 if cluster.quorate() else 0}]
        for node in cluster.nodes.values():
            reachable = member_online(cluster, node)
            out.append({"type": "node", "id": f"node/{node.name}", "name": node.name, "nodeid": node.nodeid,
                        "ip": node.ip, "local": 1 if node.name == cluster.local_node else 0,
                        "online": 1 if reachable else 0, "level": node.level})
    return out


@api.get("/cluster/nextid", params={"vmid": P.vmid(optional=True)})
def nextid(ctx, p):
    cluster = ctx.cluster
    with cluster.lock:
        if "vmid" in p:
            if p["vmid"] in cluster.guests:
                raise ApiError(400, "Parameter verification failed.", {"vmid": f"VM {p['vmid']} already exists"})
            return str(p["vmid"])
        return str(cluster.next_vmid())  # PVE sends it as a string (pve-semantics §1.4)


@api.get("/cluster/tasks", params={})
def cluster_tasks(ctx, p):
    cluster = ctx.cluster
    with cluster.lock:
        tasks = list(reversed(cluster.tasks.order[-2000:]))
    return [t.list_dict() for t in tasks if _task_visible(ctx, t)]


def _task_visible(ctx, task) -> bool:
    if ctx.is_root or task.user == ctx.authid:
        return True
    if ctx.tokenid is None and task.userid == ctx.userid:
        return True
    return ctx.has(f"/nodes/{task.node}", "Sys.Audit")


@api.get("/cluster/log", params={"max": P.integer(minimum=1)})
def cluster_log(ctx, p):
    ctx.check("/", "Sys.Syslog")
    return list(reversed(ctx.cluster.events[-int(p.get("max", 50)):]))


@api.get("/cluster/options", params={})
def get_options(ctx, p):
    ctx.check("/", "Sys.Audit")
    return dict(ctx.cluster.options)


@api.put("/cluster/options", params={
    "next-id": P.string(), "description": P.string(max_length=65536), "keyboard": P.string(),
    "language": P.string(), "migration": P.string(), "ha": P.string(), "tag-style": P.string(),
    "delete": P.string(),
})
def set_options(ctx, p):
    ctx.check("/", "Sys.Modify")
    with ctx.cluster.lock:
        for key in (p.pop("delete", "") or "").split(","):
            ctx.cluster.options.pop(key.strip(), None)
        ctx.cluster.options.update(p)
    return None
