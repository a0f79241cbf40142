"""Cluster-wide reads and writes: /cluster/resources, /cluster/status, HA status, nextid, tasks,
scheduled backup jobs. Answers are normalized so that a field the schema marks optional may be
missing: what can be derived (node, vmid, storage from `id`; task fields from the UPID) is."""

from __future__ import annotations

from typing import NotRequired, Required, TypedDict

from .errors import ProxmoxNotFound, ProxmoxPermissionError, ProxmoxValidationError
from .upid import is_upid, parse_upid


class Resource(TypedDict, total=False):
    """One item of GET /cluster/resources: only `id` and `type` are promised."""

    id: Required[str]
    type: Required[str]  # node | qemu | lxc | storage | pool | sdn | network
    node: str
    vmid: int
    storage: str
    name: str
    status: str
    template: int
    lock: str
    tags: str
    pool: str
    hastate: str
    level: str
    plugintype: str
    content: str
    shared: int
    cpu: float
    maxcpu: float
    mem: int
    maxmem: int
    disk: int
    maxdisk: int
    uptime: int


class ClusterMember(TypedDict, total=False):
    """One item of GET /cluster/status (`type` cluster or node); id, name, type promised."""

    id: Required[str]
    name: Required[str]
    type: Required[str]
    ip: str
    level: str
    local: int
    nodeid: int
    nodes: int
    online: int
    quorate: int
    version: int


class ClusterTask(TypedDict):
    """One item of GET /cluster/tasks: only `upid` is promised; node/type/id/user/starttime are
    read from it when Proxmox leaves them out."""

    upid: str
    node: str
    type: str
    id: str
    user: str
    starttime: int
    endtime: NotRequired[int]
    status: NotRequired[str]


def _with_id_parts(item: dict) -> Resource:
    parts = str(item.get("id") or "").split("/")
    kind = item.get("type") or parts[0]
    out = dict(item, type=kind)
    if kind == "node" and len(parts) == 2:
        out.setdefault("node", parts[1])
    elif kind in ("qemu", "lxc") and len(parts) == 2 and parts[1].isdigit():
        out.setdefault("vmid", int(parts[1]))
    elif kind == "storage" and len(parts) == 3:
        out.setdefault("node", parts[1])
        out.setdefault("storage", parts[2])
    return out  # type: ignore[return-value]


def resources(client, type: str | None = None) -> list[Resource]:
    """GET /cluster/resources (optionally `type` vm|storage|node|sdn)."""
    return [_with_id_parts(i) for i in client.get("cluster/resources", type=type) or [] if isinstance(i, dict)]


def _count(calls: dict | None, label: str) -> None:
    if calls is not None:
        calls[label] = calls.get(label, 0) + 1


def complete_resources(client, items: list[Resource], calls: dict | None = None) -> list[Resource]:
    """Fill what /cluster/resources left out from the per-node lists, where the schema promises it:
    node status from GET /nodes, a guest's node and status from GET /nodes/{node}/{qemu,lxc}, a
    storage's type and content from GET /nodes/{node}/storage. Makes no call when nothing is missing
    (a real cluster sends these fields), so the sync's cost stays three calls there."""
    nodes = [r for r in items if r["type"] == "node"]
    guests = [r for r in items if r["type"] in ("qemu", "lxc") and not (r.get("node") and r.get("status"))]
    storages = [r for r in items if r["type"] == "storage" and (r.get("content") is None or not r.get("plugintype"))]
    if not (guests or storages or any(not r.get("status") for r in nodes)):
        return items
    _count(calls, "GET /nodes")
    listed = {i["node"]: i for i in client.get("nodes") or [] if isinstance(i, dict) and i.get("node")}
    for item in nodes:
        for key, value in listed.get(item.get("node"), {}).items():
            item.setdefault(key, value)
    online = sorted(name for name, i in listed.items() if i.get("status") == "online")
    if guests:
        where: dict[int, dict] = {}
        for node in online:
            for kind in ("qemu", "lxc"):
                _count(calls, f"GET /nodes/{{node}}/{kind}")
                for i in client.get(f"nodes/{node}/{kind}") or []:
                    if isinstance(i, dict) and i.get("vmid") is not None:
                        where[int(i["vmid"])] = dict(i, node=node, type=kind)
        for item in guests:
            for key, value in where.get(int(item.get("vmid") or -1), {}).items():
                item.setdefault(key, value)
    if storages:
        seen: dict[tuple[str, str], dict] = {}
        for node in {r.get("node") for r in storages} & set(online):
            _count(calls, "GET /nodes/{node}/storage")
            for i in client.get(f"nodes/{node}/storage") or []:
                if isinstance(i, dict) and i.get("storage"):
                    seen[(node, i["storage"])] = i
        for item in storages:
            found = seen.get((item.get("node"), item.get("storage")))
            if found is None:
                continue
            item.setdefault("plugintype", found.get("type") or "")
            item.setdefault("content", found.get("content") or "")
            if found.get("shared") is not None:
                item.setdefault("shared", found["shared"])
            # Listed by its node = enabled there; usage only when Proxmox gives it.
            item.setdefault("status", "available" if found.get("active", 1) else "unavailable")
            if found.get("used") is not None:
                item.setdefault("disk", found["used"])
            if found.get("total") is not None:
                item.setdefault("maxdisk", found["total"])
    return items


def find_guest(client, vmid: int) -> Resource | None:
    """The guest with `vmid` as /cluster/resources lists it (one call; more only where Proxmox
    left out its node or status), or None."""
    found = next((i for i in resources(client, "vm") if str(i.get("vmid")) == str(vmid)), None)
    return complete_resources(client, [found])[0] if found is not None else None


def status(client) -> list[ClusterMember]:
    """GET /cluster/status: the cluster entry (absent on a standalone node) and one per node."""
    return [i for i in client.get("cluster/status") or [] if isinstance(i, dict)]


def ha_status(client) -> list[dict] | None:
    """GET /cluster/ha/status/current, or None when this cluster does not serve it (404/501) or the
    token may not read it: the portal then shows no HA state instead of failing the sync."""
    try:
        return client.get("cluster/ha/status/current") or []
    except (ProxmoxNotFound, ProxmoxPermissionError):
        return None


def next_vmid(client) -> int:
    """GET /cluster/nextid: the lowest vmid Proxmox has free now (it reserves nothing)."""
    return int(client.get("cluster/nextid"))


def vmid_free(client, vmid: int) -> bool:
    """True when Proxmox has no guest `vmid` (nextid?vmid= answers 400 when it is taken)."""
    try:
        client.get("cluster/nextid", vmid=vmid)
    except ProxmoxValidationError:
        return False
    return True


def tasks(client) -> list[ClusterTask]:
    """GET /cluster/tasks (recent tasks of every node), each completed from its UPID."""
    out = []
    for item in client.get("cluster/tasks") or []:
        upid = item.get("upid") if isinstance(item, dict) else None
        if not is_upid(upid):
            continue
        parsed = parse_upid(upid)
        task = {"node": parsed.node, "type": parsed.type, "id": parsed.id, "user": parsed.user,
                "starttime": parsed.starttime, **{k: v for k, v in item.items() if v is not None}}
        out.append(task)
    return out


# -- scheduled backup jobs (/cluster/backup) ---------------------------------------------------

def backup_jobs(client) -> list[dict]:
    """GET /cluster/backup: every scheduled backup job (`id` promised, the rest optional)."""
    return [i for i in client.get("cluster/backup") or [] if isinstance(i, dict) and i.get("id")]


def backup_job_create(client, job_id: str, **params) -> None:
    client.post("cluster/backup", id=job_id, **params)


def backup_job_update(client, job_id: str, *, delete: list[str] | tuple = (), **params) -> None:
    client.put(f"cluster/backup/{job_id}", delete=",".join(delete) or None, **params)


def backup_job_delete(client, job_id: str) -> None:
    client.delete(f"cluster/backup/{job_id}")


# -- metrics (/cluster/metrics/export, PVE 9.0+) -------------------------------------------------

class Metric(TypedDict, total=False):
    """One item of GET /cluster/metrics/export, as pve-manager's PullMetric stores it every 10 s:
    `id` node/<name> | qemu/<vmid> | lxc/<vmid> | storage/<node>/<id>, `metric` (cpu_current,
    mem_used, mem_total, net_in, net_out, disk_read, ...), `type` gauge | counter | derive
    (derive: a byte counter). The schema promises none of them; metrics_export drops an item
    without id, metric, timestamp or a numeric value."""

    id: Required[str]
    metric: Required[str]
    timestamp: Required[int]
    value: Required[float]
    type: str


def metrics_export(client, *, history: bool = False, start_time: int | None = None,
                   nodes: list[str] | None = None) -> list[Metric] | None:
    """GET /cluster/metrics/export: the metrics of every online node and its guests in one call
    (with `history`, the kept generations newer than `start_time`; `nodes` limits it to those
    nodes). None when this cluster does not serve it (before PVE 9.0: 501)."""
    params = {"history": 1 if history else None, "start-time": start_time,
              "node-list": ",".join(nodes) if nodes else None}
    try:
        answer = client.get("cluster/metrics/export", **params)
    except ProxmoxNotFound:
        return None
    items = answer.get("data") if isinstance(answer, dict) else answer  # the schema nests it in `data`
    out: list[Metric] = []
    for item in items or []:
        if not isinstance(item, dict) or not item.get("id") or not item.get("metric"):
            continue
        try:
            timestamp, value = int(item["timestamp"]), float(item["value"])
        except (KeyError, TypeError, ValueError):
            continue
        out.append(Metric(id=str(item["id"]), metric=str(item["metric"]), timestamp=timestamp, value=value,
                          **({"type": item["type"]} if item.get("type") else {})))
    return out
