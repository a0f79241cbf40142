"""High availability: HA status, resources, rules, legacy groups, storage replication, Ceph health.

Reads return plain typed data where every field the schema marks optional may be absent (a sparse
cluster). Status texts such as "pve1 (active, watchdog active, Wed ...)" are parsed into the word
that matters. Writes return what Proxmox answers; refusals raise the gateway's typed errors.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from . import cluster as pve_cluster
from .errors import ProxmoxError, ProxmoxNotFound, ProxmoxPermissionError

GUEST_PREFIX = {"qemu": "vm", "lxc": "ct"}


def sid_for(guest_type: str, vmid: int) -> str:
    """The HA resource id of a guest: vm:100 for QEMU, ct:101 for LXC."""
    return f"{GUEST_PREFIX.get(guest_type, 'vm')}:{int(vmid)}"


def sid_vmid(sid: str) -> int | None:
    tail = str(sid).rsplit(":", 1)[-1]
    return int(tail) if tail.isdigit() else None


def _inner_word(text: str) -> str:
    """'pve1 (active, watchdog active, Wed ...)' -> 'active'; text without parentheses -> itself."""
    if "(" in (text or ""):
        return text.split("(", 1)[1].rstrip(")").split(",", 1)[0].strip()
    return (text or "").strip()


@dataclass
class LrmState:
    node: str
    state: str  # active | idle | maintenance mode | old timestamp - dead? | unable to read lrm status ...
    watchdog: str = ""  # watchdog active | watchdog standby | watchdog released
    timestamp: int | None = None
    status: str = ""

    @property
    def maintenance(self) -> bool:
        return "maintenance" in self.state

    @property
    def dead(self) -> bool:
        return "dead" in self.state or "unable" in self.state


@dataclass
class ServiceState:
    sid: str
    node: str = ""
    crm_state: str = ""  # the CRM's state (started, fence, recovery, migrate...); may be absent
    state: str = ""  # the verbose state shown to people
    request_state: str = ""
    max_restart: int | None = None
    max_relocate: int | None = None
    failback: int | None = None
    comment: str = ""
    group: str = ""

    @property
    def vmid(self) -> int | None:
        return sid_vmid(self.sid)


@dataclass
class HaStatus:
    """GET /cluster/ha/status/current, parsed."""

    quorate: bool | None = None
    quorum_node: str = ""
    quorum_status: str = ""
    master_node: str = ""
    master_state: str = ""  # active | idle | old timestamp - dead? ...
    fencing: str = ""  # armed | standby | disarming | disarmed ('' when not reported)
    resource_mode: str = ""
    lrms: dict[str, LrmState] = field(default_factory=dict)
    services: dict[str, ServiceState] = field(default_factory=dict)


def _int(value) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def parse_status(items: list[dict] | None) -> HaStatus:
    out = HaStatus()
    for item in items or []:
        kind = item.get("type") or str(item.get("id", "")).split(":", 1)[0]
        text = str(item.get("status") or "")
        if kind == "quorum":
            out.quorum_node = item.get("node") or ""
            out.quorum_status = text
            if item.get("quorate") is not None:
                out.quorate = bool(int(item["quorate"]))
            elif text:
                out.quorate = text == "OK"
        elif kind == "master":
            out.master_node = item.get("node") or text.split(" ", 1)[0]
            out.master_state = _inner_word(text)
        elif kind == "fencing":
            out.fencing = item.get("armed-state") or _inner_word(text) or text.split(" ", 1)[0]
            out.resource_mode = item.get("resource_mode") or ""
        elif kind == "lrm":
            node = item.get("node") or str(item.get("id", "")).split(":", 1)[-1]
            inner = text.split("(", 1)[1].rstrip(")") if "(" in text else text
            parts = [p.strip() for p in inner.split(",")]
            out.lrms[node] = LrmState(node=node, state=parts[0] if parts else "", timestamp=_int(item.get("timestamp")),
                                      watchdog=next((p for p in parts[1:] if p.startswith("watchdog")), ""),
                                      status=text)
        elif kind == "service":
            sid = item.get("sid") or str(item.get("id", "")).split(":", 1)[-1]
            if not sid:
                continue
            verbose = item.get("state") or ""
            if not verbose and "(" in text:  # 'vm:100 (pve1, started)'
                verbose = text.split("(", 1)[1].rstrip(")").split(",")[-1].strip()
            node = item.get("node") or ""
            if not node and "(" in text:
                node = text.split("(", 1)[1].split(",", 1)[0].strip().replace("---", "")
            out.services[sid] = ServiceState(
                sid=sid, node=node, crm_state=item.get("crm_state") or "", state=verbose,
                request_state=item.get("request_state") or "", max_restart=_int(item.get("max_restart")),
                max_relocate=_int(item.get("max_relocate")), failback=_int(item.get("failback")),
                comment=item.get("comment") or "", group=item.get("group") or "")
    return out


def status(client) -> HaStatus | None:
    """The HA status, or None when the cluster does not serve it (or the token may not read it)."""
    items = pve_cluster.ha_status(client)
    return None if items is None else parse_status(items)


def manager_status(client) -> dict:
    """GET /cluster/ha/status/manager_status: the CRM's own view (node_status, service_status...)."""
    return client.get("cluster/ha/status/manager_status") or {}


# -- quorum ------------------------------------------------------------------------------------

@dataclass
class Quorum:
    """What /cluster/status tells about corosync: one vote per node (Proxmox's default)."""

    quorate: bool | None
    nodes: int
    online: int
    cluster_name: str = ""
    expected_votes: int = 0
    votes: int = 0

    @property
    def needed(self) -> int:
        return self.expected_votes // 2 + 1


def quorum(members: list[dict]) -> Quorum:
    entry = next((i for i in members if i.get("type") == "cluster"), None) or {}
    nodes = [i for i in members if i.get("type") == "node"]
    online = sum(1 for i in nodes if i.get("online"))
    total = int(entry.get("nodes") or len(nodes))
    quorate = bool(int(entry["quorate"])) if entry.get("quorate") is not None else (
        online * 2 > total if nodes else None)
    return Quorum(quorate=quorate, nodes=total, online=online, cluster_name=entry.get("name") or "",
                  expected_votes=total, votes=online)


# -- resources ---------------------------------------------------------------------------------

def resources(client) -> list[dict]:
    """GET /cluster/ha/resources: {sid, type?, state?, max_restart?, max_relocate?, failback?, comment?, group?}."""
    return [i for i in client.get("cluster/ha/resources") or [] if isinstance(i, dict) and i.get("sid")]


def _flag(value):
    return None if value is None else (1 if value else 0)


def resource_add(client, sid: str, *, state: str | None = None, max_restart: int | None = None,
                 max_relocate: int | None = None, failback: bool | None = None, comment: str | None = None) -> None:
    client.post("cluster/ha/resources", sid=sid, state=state, max_restart=max_restart, max_relocate=max_relocate,
                failback=_flag(failback), comment=comment or None)


def resource_update(client, sid: str, *, state: str | None = None, max_restart: int | None = None,
                    max_relocate: int | None = None, failback: bool | None = None, comment: str | None = None,
                    delete: list[str] | tuple = ()) -> None:
    client.put(f"cluster/ha/resources/{sid}", state=state, max_restart=max_restart, max_relocate=max_relocate,
               failback=_flag(failback), comment=comment or None, delete=",".join(delete) or None)


def resource_remove(client, sid: str) -> None:
    client.delete(f"cluster/ha/resources/{sid}")


def resource_move(client, sid: str, node: str, *, relocate: bool = False) -> dict:
    """Ask the CRM to migrate (live) or relocate (stop, move, start) `sid` to `node`."""
    return client.post(f"cluster/ha/resources/{sid}/{'relocate' if relocate else 'migrate'}", node=node) or {}


# -- rules and legacy groups ---------------------------------------------------------------------

def parse_nodes(text: str | None) -> dict[str, int]:
    """'pve1:2,pve2:1,pve3' -> {'pve1': 2, 'pve2': 1, 'pve3': 0}."""
    out = {}
    for item in re.split(r"[,;\s]+", text or ""):
        if item:
            name, _, prio = item.partition(":")
            out[name] = int(prio) if prio.isdigit() else 0
    return out


def encode_nodes(nodes: dict[str, int]) -> str:
    return ",".join(f"{name}:{prio}" if prio else name for name, prio in nodes.items())


def rules(client) -> list[dict]:
    """GET /cluster/ha/rules, each with `resources` as a list and `nodes` as {node: priority}. The
    list promises only `rule`: a rule listed without its type or resources is read on its own
    (GET /cluster/ha/rules/{rule}, which promises the type)."""
    out = []
    for item in client.get("cluster/ha/rules") or []:
        if not isinstance(item, dict) or not item.get("rule"):
            continue
        if not (item.get("type") and item.get("resources")):
            item = {**item, **(client.get(f"cluster/ha/rules/{item['rule']}") or {})}
        rule = dict(item)
        rule["resources"] = [s for s in re.split(r"[,;\s]+", item.get("resources") or "") if s]
        rule["nodes"] = parse_nodes(item.get("nodes"))
        out.append(rule)
    return out


def rule_create(client, rule: str, *, type: str, resources: list[str], nodes: dict[str, int] | None = None,
                strict: bool | None = None, affinity: str | None = None, disable: bool | None = None,
                comment: str | None = None) -> None:
    client.post("cluster/ha/rules", rule=rule, type=type, resources=",".join(resources),
                nodes=encode_nodes(nodes) if nodes else None, strict=_flag(strict), affinity=affinity,
                disable=_flag(disable) or None, comment=comment or None)


def rule_update(client, rule: str, *, type: str, resources: list[str], nodes: dict[str, int] | None = None,
                strict: bool | None = None, affinity: str | None = None, disable: bool | None = None,
                comment: str | None = None) -> None:
    delete = [k for k, v in (("comment", comment), ("disable", disable)) if not v]
    client.put(f"cluster/ha/rules/{rule}", type=type, resources=",".join(resources),
               nodes=encode_nodes(nodes) if nodes else None, strict=_flag(strict), affinity=affinity,
               disable=1 if disable else None, comment=comment or None, delete=",".join(delete) or None)


def rule_delete(client, rule: str) -> None:
    client.delete(f"cluster/ha/rules/{rule}")


def groups(client) -> list[dict] | None:
    """Legacy HA groups, or None once the CRM migrated them to rules (9.x answers 500 then)."""
    try:
        items = client.get("cluster/ha/groups") or []
    except ProxmoxError as exc:
        if "migrated to rules" in str(exc) or isinstance(exc, ProxmoxNotFound):
            return None
        raise
    return [dict(i, nodes=parse_nodes(i.get("nodes"))) for i in items if isinstance(i, dict) and i.get("group")]


# -- storage replication -------------------------------------------------------------------------

def replication_jobs(client) -> list[dict]:
    """GET /cluster/replication: {id, guest, jobnum, target, type, schedule?, rate?, comment?, disable?, source?}."""
    return [i for i in client.get("cluster/replication") or [] if isinstance(i, dict) and i.get("id")]


def replication_status(client, node: str) -> list[dict]:
    """GET /nodes/{node}/replication: the jobs running from `node`, with last_sync, duration,
    fail_count, error... (all optional: the schema promises only `id`)."""
    return [i for i in client.get(f"nodes/{node}/replication") or [] if isinstance(i, dict) and i.get("id")]


def replication_create(client, job_id: str, *, target: str, schedule: str | None = None,
                       rate: float | None = None, comment: str | None = None, disable: bool | None = None) -> None:
    client.post("cluster/replication", id=job_id, target=target, type="local", schedule=schedule or None,
                rate=rate, comment=comment or None, disable=1 if disable else None)


def replication_update(client, job_id: str, *, schedule: str | None = None, rate: float | None = None,
                       comment: str | None = None, disable: bool | None = None,
                       delete: list[str] | tuple = ()) -> None:
    """PUT /cluster/replication/{id}: schedule, rate, comment, disable (the target is fixed);
    `delete` names the settings to clear (rate, comment, disable back to their defaults)."""
    client.put(f"cluster/replication/{job_id}", schedule=schedule or None, rate=rate, comment=comment or None,
               disable=1 if disable else None, delete=",".join(delete) or None)


def replication_delete(client, job_id: str, *, keep: bool = False) -> None:
    """DELETE /cluster/replication/{id}. Proxmox marks the job for removal (`remove_job`) and its
    next run removes the replication snapshots (and, unless `keep`, the copies on the target)
    before the job leaves the list."""
    client.delete(f"cluster/replication/{job_id}", keep=1 if keep else None)


# -- Ceph -----------------------------------------------------------------------------------------

@dataclass
class CephHealth:
    status: str  # HEALTH_OK | HEALTH_WARN | HEALTH_ERR ('' when absent)
    checks: dict[str, str]  # check name -> summary
    osds: int | None = None
    osds_up: int | None = None
    osds_in: int | None = None
    pgs: int | None = None
    pg_states: dict[str, int] = field(default_factory=dict)
    bytes_used: int | None = None
    bytes_total: int | None = None
    monitors: list[str] = field(default_factory=list)


def _num(data: dict, *keys):
    for key in keys:
        if data.get(key) is not None:
            return _int(data[key])
    return None


def ceph_status(client) -> CephHealth | None:
    """GET /cluster/ceph/status parsed, or None when Ceph is not set up on this cluster."""
    try:
        data = client.get("cluster/ceph/status") or {}
    except (ProxmoxNotFound, ProxmoxPermissionError):
        return None
    except ProxmoxError as exc:
        if "not installed" in str(exc) or "not initialized" in str(exc):
            return None
        raise
    health = data.get("health") or {}
    checks = {}
    for name, check in (health.get("checks") or {}).items():
        summary = check.get("summary") if isinstance(check, dict) else None
        checks[name] = (summary.get("message") if isinstance(summary, dict) else summary) or name
    osdmap = data.get("osdmap") or {}
    osdmap = osdmap.get("osdmap", osdmap)  # older releases nest it once more
    pgmap = data.get("pgmap") or {}
    return CephHealth(
        status=health.get("status") or "", checks=checks,
        osds=_num(osdmap, "num_osds"), osds_up=_num(osdmap, "num_up_osds"), osds_in=_num(osdmap, "num_in_osds"),
        pgs=_num(pgmap, "num_pgs"),
        pg_states={s.get("state_name", "?"): int(s.get("count") or 0) for s in pgmap.get("pgs_by_state") or []
                   if isinstance(s, dict)},
        bytes_used=_num(pgmap, "bytes_used", "raw_bytes_used"), bytes_total=_num(pgmap, "bytes_total", "raw_bytes"),
        monitors=list(data.get("quorum_names") or []))
