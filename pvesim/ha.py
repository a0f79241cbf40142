"""The HA stack (pve-ha-manager): configuration, the CRM and one LRM per node (pve-semantics §4.3-4.5).

One background thread runs a round every `ROUND` simulated seconds: first every LRM (agent lock,
watchdog, self-fencing, starting/stopping/migrating its services as tasks), then the CRM on the
master node (node states, fencing, the service state machine, recovery placement). All durations
are simulated seconds on `cluster.clock`; everything runs under `cluster.lock`.

Every transition is kept in `service_status`/`node_status` (what manager_status shows) and
written to the cluster log the way pve-ha-crm/pve-ha-lrm log it, so a client can draw a timeline.
Node power/partition changes need no hook: each round reads node state and quorum afresh.

Timeline of a node failure (simulated seconds after the node dies): its LRM stops renewing the
agent lock; CRM marks the node `unknown`, after FENCE_DELAY `fence` (services `fence`), once the
lock is LOCK_LIFETIME old it logs `fencing: acknowledged - got agent lock for node 'x'`, services go
`recovery` and are placed on the best allowed node, then `started` (the LRM there runs qmstart).
A node cut off from quorum with active services resets itself after WATCHDOG_TIMEOUT.

Legacy groups: every simulated node runs 9.x, so the CRM converts groups into node-affinity rules
(`ha-group-<group>`, strict = restricted, failback = !nofailback) as soon as all nodes and LRMs are
up; until then (a scenario with groups and a node down) the groups API works; afterwards, as on
real 9.x, it answers `cannot ...: ha groups have been migrated to rules`.

Public methods for other modules: add_resource(sid, **opts), update_resource(sid, opts, delete,
digest), remove_resource(sid, purge=True), request_state(sid, state), is_managed(sid),
sid_for(vmid), migrate(sid, node, kind), disarm_ha(mode), arm_ha(), service_state(sid),
node_state(node), select_node(sid, current), status_current(node), manager_status(node).
"""

from __future__ import annotations

import hashlib
import json
import secrets
import threading
import time
from typing import TYPE_CHECKING

from .errors import ApiError, TaskError

if TYPE_CHECKING:
    from .state import Cluster, Guest

ROUND = 10.0  # CRM/LRM loop period
FENCE_DELAY = 60.0  # a node offline this long gets fenced
LOCK_LIFETIME = 120.0  # pmxcfs lock lifetime: a dead node's agent lock is free after this
WATCHDOG_TIMEOUT = 60.0  # an LRM without quorum resets its node after this

RESOURCE_DEFAULTS = {"state": "started", "failback": 1, "max_restart": 1, "max_relocate": 1}
RESOURCE_KEYS = ("state", "max_restart", "max_relocate", "failback", "comment", "group")
# CRM states whose service belongs to (and must be fenced with) its node
FENCEABLE = ("started", "request_start", "request_stop", "stopped", "migrate", "relocate")
ACTIVE_STATES = ("started", "request_start", "request_stop", "migrate", "relocate", "fence", "recovery")


def config_digest(data) -> str:
    return hashlib.sha1(json.dumps(data, sort_keys=True, default=sorted).encode()).hexdigest()


def _uid() -> str:
    return secrets.token_urlsafe(16)[:22]


class HAManager:
    """Configuration plus the running CRM/LRM simulation of one cluster."""

    def __init__(self, cluster: "Cluster"):
        self.cluster = cluster
        self.resources: dict[str, dict] = {}  # sid -> {"type", "state", ...} as resources.cfg holds it
        self.rules: dict[str, dict] = {}  # ruleid -> {"type", "resources": set, "nodes": {n: prio}, ...}
        self.groups: dict[str, dict] = {}  # legacy groups.cfg: group -> {"nodes": {n: prio}, ...}
        self.service_status: dict[str, dict] = {}
        self.node_status: dict[str, str] = {}
        self.master_node: str | None = None
        self.master_timestamp: int | None = None
        self.lrm: dict[str, dict] = {}
        self.disarm: dict | None = None  # {"mode": freeze|ignore, "state": disarming|disarmed}
        self.commands: list[tuple] = []  # queued crm commands, like /etc/pve/ha/crm_commands
        self.now = 0.0  # simulated seconds since the manager started
        self._master_seen = 0.0
        self._written: dict[str, float] = {}  # "master"/node -> simulated time of its last status write
        self._lost_at: dict[str, float] = {}  # node -> when the CRM last saw it online
        self._fenced: set[str] = set()  # nodes fenced since they went away
        self._lock_renewed: dict[str, float] = {}  # node -> last agent lock renewal
        self._quorum_lost_at: dict[str, float] = {}  # node -> when its LRM lost quorum
        self._jobs: dict[str, dict] = {}  # sid -> running LRM task
        self._results: dict[str, dict] = {}  # sid -> finished LRM task result for the CRM
        self._restarts: dict[str, int] = {}
        self._noted: set[tuple] = set()  # one-shot log lines already written
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # ---- lifecycle ------------------------------------------------------------------------
    def start(self) -> None:
        """Snapshot the current cluster as the CRM's first view, then run the loop."""
        c = self.cluster
        with c.lock:
            self.master_node = c.local_node if c.quorate(c.local_node) else None
            self.master_timestamp = time.time() if self.master_node else None
            for node in c.nodes.values():
                self.node_status[node.name] = "online" if node.online and not node.partitioned else "unknown"
                self.lrm[node.name] = {"mode": "active", "state": "wait_for_agent_lock", "results": {},
                                       "timestamp": time.time() if node.online else None}
            for sid, conf in self.resources.items():
                guest = self._guest(sid)
                if guest is None or conf["state"] == "ignored":
                    continue
                state = "started" if conf["state"] == "started" and guest.status == "running" else (
                    "request_start" if conf["state"] == "started" else "stopped")
                self.service_status[sid] = {"node": guest.node, "state": state, "uid": _uid()}
                if state == "started":
                    self.service_status[sid]["running"] = 1
            self._lrm_round()
            self._written["master"] = self.now
        self._thread = threading.Thread(target=self._loop, name="pvesim-ha", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()

    def _loop(self) -> None:
        while not self.cluster.clock.sleep(ROUND, self._stop):
            with self.cluster.lock:
                self.now += ROUND
                try:
                    self._lrm_round()
                    self._crm_round()
                except Exception as exc:  # the simulator must keep running; show the bug in the log
                    self._log(self.master_node or self.cluster.local_node, f"internal HA simulator error: {exc!r}", 3)

    # ---- helpers ---------------------------------------------------------------------------
    def _log(self, node: str | None, msg: str, severity: int = 6, tag: str = "pve-ha-crm") -> None:
        self.cluster.log_event(node or self.cluster.local_node, "root@pam", msg, severity)
        self.cluster.events[-1]["tag"] = tag

    def _set_state(self, sid: str, state: str, **extra) -> None:
        ss = self.service_status[sid]
        old = ss["state"]
        if old != state:
            detail = "".join(f"  ({k} = {v})" for k, v in extra.items()
                             if v and (k == "target" or (k == "node" and (v != ss.get("node") or old == "recovery"))))
            self._log(self.master_node, f"service '{sid}': state changed from '{old}' to '{state}'{detail}")
        ss["state"] = state
        ss["uid"] = _uid()
        for key in ("running", "target"):
            ss.pop(key, None)
        for key, value in extra.items():
            if value is None:
                ss.pop(key, None)
            else:
                ss[key] = value

    def _set_node_state(self, node: str, state: str) -> None:
        old = self.node_status.get(node)
        if old != state:
            self._log(self.master_node, f"node '{node}': state changed from '{old}' => '{state}'")
        self.node_status[node] = state

    def _guest(self, sid: str) -> "Guest | None":
        kind, _, name = sid.partition(":")
        guest = self.cluster.guests.get(int(name)) if name.isdigit() else None
        if guest is None or guest.type != ("qemu" if kind == "vm" else "lxc"):
            return None
        return guest

    def resource_conf(self, sid: str) -> dict:
        """The resource config with defaults filled in (read_and_check_resources_config)."""
        conf = {**RESOURCE_DEFAULTS, **self.resources[sid]}
        if conf["state"] == "enabled":
            conf["state"] = "started"
        return conf

    # ---- resources (API and guests engineer) -------------------------------------------------
    def resolve_sid(self, sid: str) -> str:
        """`100` -> `vm:100`/`ct:100` as parse_sid does; raises PVE's errors."""
        sid = str(sid).strip()
        if sid.isdigit():
            guest = self.cluster.guests.get(int(sid))
            if guest is None:
                raise ApiError(500, f"unable do detect SID from VMID - VM/CT {sid} does not exist")
            return f"{'vm' if guest.type == 'qemu' else 'ct'}:{sid}"
        kind, sep, name = sid.partition(":")
        if not sep or not kind or not name or " " in sid:
            raise ApiError(500, f"unable to parse service id '{sid}'")
        return sid

    def sid_for(self, vmid: int) -> str | None:
        """The HA resource id managing a guest, or None."""
        for kind in ("vm", "ct"):
            if f"{kind}:{vmid}" in self.resources:
                return f"{kind}:{vmid}"
        return None

    def is_managed(self, sid: str) -> bool:
        """Whether HA manages `sid` (an `ignored` resource behaves as unmanaged, as in PVE)."""
        conf = self.resources.get(sid)
        return conf is not None and conf.get("state") != "ignored"

    def add_resource(self, sid, **opts) -> str:
        """Manage a guest by HA (`ha-manager add`); returns the normalized sid."""
        with self.cluster.lock:
            sid = self.resolve_sid(sid)
            kind, _, name = sid.partition(":")
            if kind not in ("vm", "ct"):
                raise ApiError(500, f"unknown resource type '{kind}'")
            if opts.get("type") and opts["type"] != kind:
                raise ApiError(500, "types does not match")
            if not name.isdigit() or self._guest(sid) is None:
                raise ApiError(500, f"resource '{sid}' does not exist in cluster")
            self._check_group_param(opts)
            if sid in self.resources:
                raise ApiError(500, f"create resource failed: cfs-lock 'domain-ha' error: resource ID '{sid}' already defined")
            conf = {"type": kind, "state": opts.get("state") or "started"}
            for key in RESOURCE_KEYS:
                if opts.get(key) is not None and key != "state":
                    conf[key] = opts[key]
            self.resources[sid] = conf
            return sid

    def update_resource(self, sid, opts: dict, delete: list[str] | None = None, digest: str | None = None) -> None:
        with self.cluster.lock:
            sid = self.resolve_sid(sid)
            if opts.get("type") and opts["type"] != sid.split(":")[0]:
                raise ApiError(500, "types does not match")
            self._check_group_param(opts)
            self._check_error_state(sid, opts.get("state"))
            prefix = "update resource failed: cfs-lock 'domain-ha' error: "
            if digest and digest != self.resources_digest():
                raise ApiError(500, prefix + "detected modified configuration - file changed by other user? Try again.")
            conf = self.resources.get(sid)
            if conf is None:
                raise ApiError(500, prefix + f"no such resource '{sid}'")
            for key in RESOURCE_KEYS:
                if opts.get(key) is not None:
                    conf[key] = opts[key]
            for key in delete or []:
                if key not in RESOURCE_KEYS:
                    raise ApiError(500, prefix + f"no such option '{key}'")
                conf.pop(key, None)
            conf.setdefault("state", "started")

    def remove_resource(self, sid, purge: bool = True) -> None:
        """Stop managing a guest (the guest itself stays as it is); `purge` also drops it from
        rules, deleting rules left without resources."""
        with self.cluster.lock:
            sid = self.resolve_sid(sid)
            if sid not in self.resources:
                raise ApiError(500, f"resource '{sid}' is not HA managed")
            del self.resources[sid]
            if purge:
                for ruleid, rule in list(self.rules.items()):
                    if sid in rule["resources"]:
                        rule["resources"].discard(sid)
                        if not rule["resources"]:
                            del self.rules[ruleid]

    def request_state(self, sid, state: str) -> None:
        """`ha-manager set <sid> --state <state>` (what hastart/hastop do)."""
        self.update_resource(sid, {"state": state})

    def _check_error_state(self, sid: str, req_state: str | None) -> None:
        ss = self.service_status.get(sid)
        if sid in self.resources and ss and ss["state"] == "error" and req_state != "disabled":
            raise ApiError(500, f"service '{sid}' in error state, must be disabled and fixed first")

    def _check_group_param(self, opts: dict) -> None:
        group = opts.get("group")
        if not group:
            return
        if not self.groups:
            raise ApiError(500, "invalid parameter 'group': ha groups have been migrated to rules")
        if group not in self.groups:
            raise ApiError(500, f"HA group '{group}' does not exist")

    def resources_digest(self) -> str:
        return config_digest(self.resources)

    def migrate(self, sid, node: str, kind: str = "migrate") -> dict:
        """Queue a `migrate`/`relocate` crm command; returns what the API answers."""
        with self.cluster.lock:
            sid = self.resolve_sid(sid)
            conf = self.resources.get(sid)
            if conf is None or conf.get("state") == "ignored":
                raise ApiError(500, f"resource '{sid}' is not HA managed")
            self._check_error_state(sid, None)
            self.cluster.node(node)
            together, separate = self._affinitive(sid)
            blocking = []
            for csid in sorted(separate):
                css = self.service_status.get(csid)
                if css and node in (css.get("node"), css.get("target")):
                    blocking.append({"sid": csid, "cause": "resource-affinity"})
            out = {"sid": sid, "requested-node": node}
            if blocking:
                out["blocking-resources"] = blocking
                return out
            comigrated = sorted(c for c in together if c in self.service_status)
            if comigrated:
                out["comigrated-resources"] = comigrated
            self.commands.append((kind, sid, node))
            for csid in comigrated:
                self.commands.append((kind, csid, node))
            return out

    def disarm_ha(self, mode: str) -> None:
        with self.cluster.lock:
            self.commands.append(("disarm-ha", mode))

    def arm_ha(self) -> None:
        with self.cluster.lock:
            self.commands.append(("arm-ha",))

    # ---- what /cluster/resources shows --------------------------------------------------------
    def service_state(self, sid: str) -> str | None:
        if sid not in self.resources:
            return None
        ss = self.service_status.get(sid)
        return ss["state"] if ss else self.resource_conf(sid)["state"]

    def node_state(self, node: str) -> str | None:
        return self.node_status.get(node) if self.resources else None

    # ---- rules --------------------------------------------------------------------------------
    def effective_rules(self) -> dict[str, dict]:
        """Enabled rules with infeasible ones dropped (what the CRM applies)."""
        errors = self.rule_errors()
        return {rid: r for rid, r in self.rules.items() if not r.get("disable") and rid not in errors}

    def rule_errors(self, rules: dict[str, dict] | None = None) -> dict[str, dict[str, list[str]]]:
        """Feasibility checks of pve-ha-manager's Rules plugins: ruleid -> {option: [messages]}."""
        rules = self.rules if rules is None else rules
        enabled = {rid: r for rid, r in rules.items() if not r.get("disable")}
        node_aff = {rid: r for rid, r in enabled.items() if r["type"] == "node-affinity"}
        res_aff = {rid: r for rid, r in enabled.items() if r["type"] == "resource-affinity"}
        positive = {rid: r for rid, r in res_aff.items() if r.get("affinity") == "positive"}
        negative = {rid: r for rid, r in res_aff.items() if r.get("affinity") == "negative"}
        errors: dict[str, dict[str, list[str]]] = {}

        def add(rid, msg, opt="resources"):
            errors.setdefault(rid, {}).setdefault(opt, []).append(msg)

        users: dict[str, list[str]] = {}
        for rid, r in node_aff.items():
            for sid in r["resources"]:
                users.setdefault(sid, []).append(rid)
        for sid, rids in sorted(users.items()):
            if len(rids) > 1:
                for rid in sorted(rids):
                    add(rid, f"resource '{sid}' is already used in another node affinity rule")
        for rid, r in sorted(res_aff.items()):
            if len(r["resources"]) < 2:
                add(rid, "rule is ineffective as there are less than two resources")
        for rid, r in sorted(negative.items()):
            if len(r["resources"]) > len(self.cluster.nodes):
                add(rid, "rule defines more resources than available nodes")
        for pid, pr in sorted(positive.items()):
            for nid, nr in sorted(negative.items()):
                if len(pr["resources"] & nr["resources"]) >= 2:
                    add(pid, "rule shares two or more resources with a negative resource affinity rule")
                    add(nid, "rule shares two or more resources with a positive resource affinity rule")
        for rid, r in sorted(res_aff.items()):
            paired = [nid for nid, nr in node_aff.items() if r["resources"] & nr["resources"]]
            if any(len(set(node_aff[nid]["nodes"].values())) > 1 for nid in paired):
                add(rid, "resources are in node affinity rules with multiple priorities")
                for nid in sorted(paired):
                    add(nid, "resources are in a resource affinity rule and cannot be in a node affinity rule with multiple priorities")
        for rid, r in sorted(positive.items()):
            paired = [nid for nid, nr in node_aff.items() if r["resources"] & nr["resources"]]
            if len(paired) > 1:
                add(rid, "resources are in multiple node affinity rules")
                for nid in sorted(paired):
                    add(nid, "at least one resource is in a positive resource affinity rule and there are other "
                             "resources in at least one other node affinity rule already")
        for rid, r in sorted(negative.items()):
            allowed, located, paired = set(), set(), []
            for nid, nr in node_aff.items():
                common = r["resources"] & nr["resources"]
                if common:
                    located |= common
                    allowed |= set(nr["nodes"])
                    paired.append(nid)
            if len(allowed) < len(located):
                add(rid, "two or more resources are restricted to less nodes than available to the resources")
                for nid in sorted(paired):
                    add(nid, "at least one resource is in a negative resource affinity rule and this rule would "
                             "restrict these to less nodes than available to the resources")
        return errors

    def rules_digest(self) -> str:
        return config_digest(self.rules)

    # ---- legacy groups ----------------------------------------------------------------------
    def _maybe_migrate_groups(self) -> None:
        """Once every node's LRM is up (all nodes run 9.x here), turn groups into node-affinity rules."""
        if not self.groups:
            return
        if any(self.node_status.get(n) != "online" or not self.lrm.get(n, {}).get("timestamp") for n in self.cluster.nodes):
            return
        order = max((r.get("order", 0) for r in self.rules.values()), default=0)
        for group, g in sorted(self.groups.items()):
            members = {sid for sid, conf in self.resources.items() if conf.get("group") == group}
            ruleid = f"ha-group-{group}"
            if members and ruleid not in self.rules:
                order += 1
                self.rules[ruleid] = {"type": "node-affinity", "resources": members, "nodes": dict(g["nodes"]),
                                      "strict": 1 if g.get("restricted") else 0, "order": order,
                                      "comment": f"Generated from HA group '{group}'."}
            for sid in members:
                conf = self.resources[sid]
                conf.pop("group", None)
                conf["failback"] = 0 if g.get("nofailback") else 1
        self._log(self.master_node, "HA groups migrated to HA node affinity rules: " + ", ".join(sorted(self.groups)))
        self.groups.clear()

    # ---- placement ----------------------------------------------------------------------------
    def _affinitive(self, sid: str) -> tuple[set[str], set[str]]:
        together, separate = set(), set()
        for rule in self.effective_rules().values():
            if rule["type"] == "resource-affinity" and sid in rule["resources"]:
                (together if rule["affinity"] == "positive" else separate).update(rule["resources"] - {sid})
        return together, separate

    def _node_affinity(self, sid: str) -> tuple[dict[str, int], bool] | None:
        """(node -> priority, strict) of the rule placing `sid`, or None."""
        for rule in sorted(self.effective_rules().values(), key=lambda r: r.get("order", 0)):
            if rule["type"] != "node-affinity" or sid not in rule["resources"]:
                continue
            return dict(rule["nodes"]), bool(rule.get("strict"))
        together, _ = self._affinitive(sid)  # positive partners share their node affinity
        for csid in sorted(together):
            for rule in self.effective_rules().values():
                if rule["type"] == "node-affinity" and csid in rule["resources"]:
                    return dict(rule["nodes"]), bool(rule.get("strict"))
        return None

    def _load(self, node: str, exclude: str) -> tuple:
        count = sum(1 for sid, ss in self.service_status.items()
                    if sid != exclude and node in (ss.get("node"), ss.get("target")) and ss["state"] in ACTIVE_STATES)
        n = self.cluster.nodes[node]
        mem = sum(g.maxmem() for g in self.cluster.guests.values() if g.node == node and g.status == "running")
        return count, mem / max(n.maxmem, 1), node

    def select_node(self, sid: str, current: str | None, mode: str = "none", exclude: set[str] = frozenset()) -> str | None:
        """select_service_node: the best allowed online node for `sid`.

        mode "none" keeps `current` if it is among the best allowed nodes (or allowed at all
        when failback is off), "try-next" never picks an excluded (failed) node."""
        online = [n for n, st in self.node_status.items() if st == "online"]
        affinity = self._node_affinity(sid)
        prio: dict[str, int] = {}
        for node in online:
            if affinity is None:
                prio[node] = 0
            elif node in affinity[0]:
                prio[node] = affinity[0][node]
            elif not affinity[1]:
                prio[node] = -1  # non-strict: any other node as a last resort
        together, separate = self._affinitive(sid)
        def placed(css):  # a service on its way out counts at its target only
            return css.get("target") if css["state"] in ("migrate", "relocate") else css.get("node")

        banned = set()
        for csid in separate:
            css = self.service_status.get(csid)
            if css and css["state"] in ACTIVE_STATES:
                banned.add(placed(css))
        wanted = set()
        for csid in together:
            css = self.service_status.get(csid)
            if css and css["state"] in ACTIVE_STATES and placed(css) in prio:
                wanted.add(placed(css))
        candidates = {n: p for n, p in prio.items() if n not in banned and n not in exclude}
        if wanted and candidates.keys() & wanted:
            candidates = {n: p for n, p in candidates.items() if n in wanted}
        if not candidates:
            return None
        top = max(candidates.values())
        best = [n for n, p in candidates.items() if p == top]
        if mode == "none" and current in candidates:
            failback = self.resource_conf(sid).get("failback", 1) if sid in self.resources else 1
            if current in best or not failback:
                return current
        return min(best, key=lambda n: self._load(n, sid))

    # ---- LRM ----------------------------------------------------------------------------------
    def _lrm_round(self) -> None:
        c = self.cluster
        for node in c.nodes.values():
            lrm = self.lrm.setdefault(node.name, {"mode": "active", "state": "wait_for_agent_lock", "results": {}, "timestamp": None})
            if not node.online:
                self._quorum_lost_at.pop(node.name, None)
                continue  # a dead LRM writes nothing: its status goes stale
            mine = [sid for sid, ss in self.service_status.items()
                    if ss.get("node") == node.name and ss["state"] in ACTIVE_STATES]
            quorate = c.quorate(node.name)
            lrm["mode"] = "disarm" if self.disarm and self.disarm["state"] == "disarmed" else "active"
            if not quorate:
                if lrm["state"] == "active":
                    lrm["state"] = "lost_agent_lock"
                    self._quorum_lost_at[node.name] = self.now
                    self._log(node.name, "lost lock 'ha_agent_" + node.name + "_lock - cfs lock update failed - "
                                         "Device or resource busy", 3, tag="pve-ha-lrm")
                lost_at = self._quorum_lost_at.get(node.name)
                if lrm["state"] == "lost_agent_lock" and lost_at is not None and lrm["mode"] != "disarm" \
                        and self.now - lost_at >= WATCHDOG_TIMEOUT:
                    self._self_fence(node)
                continue
            self._quorum_lost_at.pop(node.name, None)
            lrm["timestamp"] = time.time()
            self._written[node.name] = self.now
            if mine and lrm["mode"] != "disarm":
                if lrm["state"] != "active":
                    self._log(node.name, f"successfully acquired lock 'ha_agent_{node.name}_lock'", tag="pve-ha-lrm")
                    self._log(node.name, "status change wait_for_agent_lock => active", tag="pve-ha-lrm")
                lrm["state"] = "active"
            elif not mine and lrm["state"] == "lost_agent_lock":
                lrm["state"] = "wait_for_agent_lock"
            if lrm["state"] == "active":
                self._lock_renewed[node.name] = self.now
                if self.disarm and self.disarm["mode"] == "ignore":
                    continue  # disarmed with resource-mode ignore: HA leaves the guests alone
                for sid in mine:
                    self._lrm_work(node.name, sid)
            lrm["results"] = {r["uid"]: {"sid": sid, "exit_code": 0 if r["ok"] else 1}
                              for sid, r in self._results.items()
                              if self.service_status.get(sid, {}).get("node") == node.name}

    def _self_fence(self, node) -> None:
        """Watchdog expired without quorum: the node resets, taking every guest with it."""
        c = self.cluster
        self._log(node.name, "client watchdog expired - disable watchdog updates", 2, tag="watchdog-mux")
        for guest in c.guests.values():
            if guest.node == node.name and guest.status == "running":
                c.guest_stopped(guest)
        for sid in [s for s, job in self._jobs.items() if job["node"] == node.name]:
            task = c.tasks.get(self._jobs.pop(sid)["upid"])
            if task is not None:
                task.stop_requested.set()
        node.boot_time = time.time()
        self.lrm[node.name]["state"] = "wait_for_agent_lock"
        self._quorum_lost_at.pop(node.name, None)
        self._log(node.name, f"node '{node.name}' self-fenced (watchdog reset), rebooted without quorum", 2, tag="pve-ha-lrm")

    def _lrm_work(self, node: str, sid: str) -> None:
        """What the LRM on `node` does for one service this round."""
        ss = self.service_status[sid]
        if sid in self._jobs or sid in self._results:
            return
        guest = self._guest(sid)
        state = ss["state"]
        if guest is None:
            if state in ("started", "request_stop", "migrate", "relocate"):
                self._results[sid] = {"uid": ss["uid"], "ok": False, "msg": f"resource '{sid}' does not exist",
                                      "kind": state}
            return
        if state == "started":
            if guest.status == "running":
                ss["running"] = 1
                self._restarts.pop(sid, None)
            elif not guest.lock:
                self._run(node, sid, "start", guest)
        elif state == "request_stop":
            if guest.status == "running":
                self._run(node, sid, "stop", guest)
            else:
                self._results[sid] = {"uid": ss["uid"], "ok": True, "kind": "stop"}
        elif state in ("migrate", "relocate"):
            self._run(node, sid, state, guest, target=ss.get("target"))

    def _run(self, node: str, sid: str, kind: str, guest: "Guest", target: str | None = None) -> None:
        c = self.cluster
        ss = self.service_status[sid]
        uid = ss["uid"]
        vm = guest.type == "qemu"
        prefix = "qm" if vm else "vz"
        if kind == "start":
            ttype, worker = f"{prefix}start", self._start_worker(guest)
        elif kind == "stop":
            ttype, worker = f"{prefix}stop", self._stop_worker(guest)
        else:
            running = guest.status == "running"
            online = running and vm and kind == "migrate"
            ttype = "qmigrate" if vm else "vzmigrate"
            worker = self._migrate_worker(guest, node, target, online=online, restart=running and not online)

        def finished(task, sid=sid, uid=uid, kind=kind):
            with c.lock:
                job = self._jobs.get(sid)
                if job is None or job["upid"] != task.upid:
                    return  # the node self-fenced meanwhile: nobody reports this task
                del self._jobs[sid]
                ss = self.service_status.get(sid)
                if ss is not None and ss["uid"] == uid:  # stale results of an older state are dropped
                    self._results[sid] = {"uid": uid, "ok": task.exitstatus == "OK", "msg": task.exitstatus, "kind": kind}

        upid = c.tasks.start(node=node, type=ttype, id=guest.vmid, user="root@pam", worker=worker, on_finish=finished)
        self._jobs[sid] = {"uid": uid, "upid": upid, "node": node, "kind": kind}

    def _start_worker(self, guest: "Guest"):
        c = self.cluster

        def work(t):
            t.log("task started by HA resource agent")
            t.sleep(2)
            with c.lock:
                if guest.vmid not in c.guests:
                    raise TaskError(f"Configuration file '{guest.conf_path}' does not exist")
                if guest.status == "running":
                    return
                c.guest_started(guest)  # start hooks (PCI) may refuse with TaskError
        return work

    def _stop_worker(self, guest: "Guest"):
        c = self.cluster

        def work(t):
            t.log("task started by HA resource agent")
            t.sleep(2)
            with c.lock:
                if guest.status == "running":
                    c.guest_stopped(guest)
        return work

    def _migrate_worker(self, guest: "Guest", source: str, target: str, online: bool, restart: bool):
        c = self.cluster
        kind = "VM" if guest.type == "qemu" else "CT"

        def stamp(line):
            return time.strftime("%Y-%m-%d %H:%M:%S ") + line

        def work(t):
            t.log("task started by HA resource agent")
            tnode = c.nodes[target]
            with c.lock:
                if guest.lock:
                    raise TaskError(f"{kind} is locked ({guest.lock})")
                guest.config["lock"] = "migrate"
            try:
                if restart:
                    t.log(f"shutdown CT {guest.vmid}")
                    t.sleep(3)
                t.log(stamp(f"starting migration of {kind} {guest.vmid} to node '{target}' ({tnode.ip})"))
                if online:
                    t.log(stamp(f"starting VM {guest.vmid} on remote node '{target}'"))
                    t.progress(8, 4, lambda i, n: stamp(f"migration active, transferred {i * 2} GiB of "
                                                        f"{guest.maxmem() // 1024 ** 3} GiB VM-state"))
                else:
                    t.sleep(2)
                with c.lock:
                    if not c.nodes[target].online:
                        raise TaskError("migration aborted")
                    was_running = guest.status == "running"
                    started_at = guest.started_at
                    if was_running:
                        c.guest_stopped(guest)
                    guest.node = target
                    if was_running and (online or restart):
                        try:
                            c.guest_started(guest)
                        except TaskError as exc:
                            guest.node = source
                            c.guest_started(guest)
                            t.log(stamp(f"ERROR: {exc}"))
                            raise TaskError("migration aborted")
                        if online:
                            guest.started_at = started_at
                t.log(stamp("migration finished successfully (duration 00:00:12)"))
            finally:
                with c.lock:
                    if guest.config.get("lock") == "migrate":
                        del guest.config["lock"]
        return work

    # ---- CRM ----------------------------------------------------------------------------------
    def _elect_master(self) -> bool:
        c = self.cluster
        master = self.master_node
        if master and c.nodes[master].online and c.quorate(master):
            self._master_seen = self.now
            return True
        if master and self.now - self._master_seen < LOCK_LIFETIME:
            return False  # the old master's lock has not expired yet
        for node in c.nodes.values():
            if node.online and c.quorate(node.name):
                self.master_node = node.name
                self._master_seen = self.now
                self._log(node.name, "successfully acquired lock 'ha_manager_lock'")
                self._log(node.name, "status change slave => master")
                return True
        return False

    def _crm_round(self) -> None:
        c = self.cluster
        if not self._elect_master():
            return
        self.master_timestamp = time.time()
        self._written["master"] = self.now
        members = c.partition_of(self.master_node)
        self._run_commands()
        # node states
        for name in c.nodes:
            state = self.node_status.get(name, "unknown")
            if name in members:
                self._lost_at.pop(name, None)
                if state != "online":
                    if state == "fence" or name in self._fenced:
                        for sid, ss in self.service_status.items():
                            if ss.get("node") == name and ss["state"] == "fence":
                                self._set_state(sid, "recovery")
                    self._fenced.discard(name)
                    self._set_node_state(name, "online")
                continue
            self._lost_at.setdefault(name, self.now)
            if state == "online":
                self._set_node_state(name, "unknown")
            elif state == "unknown" and name not in self._fenced and not self.disarm \
                    and self.now - self._lost_at[name] >= FENCE_DELAY:
                self._set_node_state(name, "fence")
        self._maybe_migrate_groups()
        self._sync_services()
        for sid in sorted(self.service_status):
            self._next_state(sid)
        # fencing: take the dead node's agent lock once it has expired
        for name, state in list(self.node_status.items()):
            if state != "fence":
                continue
            if self.now - self._lock_renewed.get(name, float("-inf")) < LOCK_LIFETIME:
                continue
            self._log(self.master_node, f"fencing: acknowledged - got agent lock for node '{name}'")
            self._fenced.add(name)
            self._set_node_state(name, "unknown")
            for sid, ss in sorted(self.service_status.items()):
                if ss.get("node") == name and ss["state"] == "fence":
                    self._set_state(sid, "recovery")
                    self._next_state(sid)
        if self.disarm and self.disarm["state"] == "disarming":
            self.disarm["state"] = "disarmed"
            self._log(self.master_node, f"HA disarmed (resource mode: {self.disarm['mode']}), all watchdogs released")

    def _run_commands(self) -> None:
        commands, self.commands = self.commands, []
        for cmd in commands:
            if cmd[0] == "disarm-ha":
                if not self.disarm:
                    self.disarm = {"mode": cmd[1], "state": "disarming"}
                    if cmd[1] == "freeze":
                        for sid, ss in self.service_status.items():
                            if ss["state"] in ("started", "stopped", "request_start", "request_stop"):
                                ss["frozen_from"] = ss["state"]
                                self._set_state(sid, "freeze", frozen_from=ss["state"])
                continue
            if cmd[0] == "arm-ha":
                if self.disarm:
                    self._log(self.master_node, "HA armed again")
                    self.disarm = None
                    for sid, ss in self.service_status.items():
                        if ss["state"] == "freeze":
                            self._set_state(sid, ss.get("frozen_from", "started"), frozen_from=None)
                continue
            kind, sid, node = cmd
            ss = self.service_status.get(sid)
            if ss is None or self.disarm:
                continue
            if node == ss.get("node"):
                self._log(self.master_node, f"ignore crm command - service already on target node: {kind} {sid} {node}")
                continue
            if self.node_status.get(node) != "online":
                self._log(self.master_node, f"ignore crm command - node not online: {kind} {sid} {node}")
                continue
            if ss["state"] not in ("started", "stopped", "request_stop"):
                continue
            if ss["state"] == "stopped" or not self._guest_running(sid):
                kind = "relocate"
            self._log(self.master_node, f"got crm command: {kind} {sid} {node}")
            self._set_state(sid, kind, node=ss["node"], target=node)

    def _guest_running(self, sid: str) -> bool:
        guest = self._guest(sid)
        return guest is not None and guest.status == "running"

    def _sync_services(self) -> None:
        for sid, conf in self.resources.items():
            cd = self.resource_conf(sid)
            if sid in self.service_status or cd["state"] == "ignored" or (self.disarm and self.disarm["mode"] == "ignore"):
                continue
            guest = self._guest(sid)
            node = guest.node if guest else None
            self._log(self.master_node, f"adding new service '{sid}' on node '{node}'")
            self.service_status[sid] = {"node": node, "state": "request_start" if cd["state"] == "started" else "request_stop",
                                        "uid": _uid()}
        for sid in list(self.service_status):
            conf = self.resources.get(sid)
            if conf is None or self.resource_conf(sid)["state"] == "ignored":
                self._log(self.master_node, f"removing stale service '{sid}' (no config)" if conf is None
                          else f"service '{sid}' is ignored, removing it from the manager status")
                del self.service_status[sid]
                self._results.pop(sid, None)
                self._jobs.pop(sid, None)

    def _next_state(self, sid: str) -> None:
        ss = self.service_status[sid]
        if self.disarm and self.disarm["mode"] == "ignore":
            return
        cd = self.resource_conf(sid)
        state = ss["state"]
        node = ss.get("node")
        guest = self._guest(sid)
        if guest is not None and state in ("started", "stopped", "request_start", "request_stop", "error") \
                and guest.node != node and sid not in self._jobs:
            ss["node"] = node = guest.node  # the config moved (e.g. a manual offline migration)
        result = self._results.get(sid)
        if result is not None and result["uid"] != ss["uid"]:
            self._results.pop(sid)
            result = None

        if state in FENCEABLE and self.node_status.get(node) == "fence":
            self._results.pop(sid, None)
            self._set_state(sid, "fence")
            return
        if state == "freeze" or self.node_status.get(node) not in ("online", None) and state != "recovery":
            return  # a node we cannot see: wait for it, or for the fence delay
        if state == "request_start":
            if cd["state"] != "started":
                self._set_state(sid, "request_stop")
            else:
                self._set_state(sid, "started", node=node)
        elif state == "started":
            self._state_started(sid, cd, result)
        elif state == "request_stop":
            if cd["state"] == "started":
                self._set_state(sid, "started", node=node)
            elif result is not None:
                self._results.pop(sid)
                self._set_state(sid, "stopped", node=node)
        elif state == "stopped":
            if cd["state"] == "started":
                target = self.select_node(sid, node)
                if target is None:
                    return
                if target != node:
                    self._set_state(sid, "relocate", node=node, target=target)
                else:
                    self._set_state(sid, "request_start", node=node)
        elif state in ("migrate", "relocate"):
            if result is None:
                return
            self._results.pop(sid)
            if result["ok"]:
                target = ss.get("target") or node
                self._set_state(sid, "started" if cd["state"] == "started" else "request_stop", node=target)
            else:
                self._log(self.master_node, f"service '{sid}' - migration failed (exit code 1)", 3)
                self._set_state(sid, "started" if cd["state"] == "started" else "request_stop", node=node)
        elif state == "recovery":
            self._state_recovery(sid, cd)
        elif state == "error":
            if cd["state"] == "disabled":
                self._set_state(sid, "stopped", node=node)

    def _state_started(self, sid: str, cd: dict, result: dict | None) -> None:
        ss = self.service_status[sid]
        node = ss["node"]
        if cd["state"] in ("stopped", "disabled"):
            self._results.pop(sid, None)
            self._set_state(sid, "request_stop", node=node)
            return
        if result is not None:
            self._results.pop(sid)
            if result["ok"]:
                ss["running"] = 1
                ss.pop("failed_nodes", None)
                self._restarts.pop(sid, None)
                return
            tries = self._restarts.get(sid, 0) + 1
            if tries <= cd["max_restart"]:
                self._restarts[sid] = tries
                self._log(node, f"restart policy: retry number {tries} for service '{sid}'", 4, tag="pve-ha-lrm")
                return  # the LRM tries again next round
            self._restarts.pop(sid, None)
            failed = ss.setdefault("failed_nodes", [])
            if node not in failed:
                failed.append(node)
            if len(failed) <= cd["max_relocate"]:
                target = self.select_node(sid, node, mode="try-next", exclude=set(failed))
                if target is not None:
                    self._log(self.master_node, f"starting service {sid} on node '{node}' failed, relocating service.", 4)
                    self._set_state(sid, "relocate", node=node, target=target, failed_nodes=failed)
                    return
            self._log(self.master_node, f"recovery policy for service {sid} failed, entering error state. "
                                        f"Failed nodes: {', '.join(failed)}", 3)
            self._log(self.master_node, f"service '{sid}' got unrecoverable error ({result.get('msg')})", 3)
            self._set_state(sid, "error", node=node, failed_nodes=None)
            return
        if not self._guest_running(sid) or sid in self._jobs:
            return
        ss["running"] = 1
        target = self.select_node(sid, node)
        if target is not None and target != node:
            self._log(self.master_node, f"migrate service '{sid}' to node '{target}' (running)")
            self._set_state(sid, "migrate", node=node, target=target)

    def _state_recovery(self, sid: str, cd: dict) -> None:
        ss = self.service_status[sid]
        fenced = ss["node"]
        target = self.select_node(sid, None, mode="best")
        if target is None:
            key = ("norecovery", sid, ss["uid"])
            if key not in self._noted:
                self._noted.add(key)
                self._log(self.master_node, f"recovering service '{sid}' from fenced node '{fenced}' failed, "
                                            f"no recovery node found", 3)
            return
        self._log(self.master_node, f"recover service '{sid}' from fenced node '{fenced}' to node '{target}'")
        guest = self._guest(sid)
        if guest is not None:
            guest.node = target  # the CRM steals the config to the recovery node
            guest.config.pop("lock", None)
        self._set_state(sid, "started" if cd["state"] == "started" else "request_stop", node=target)

    # ---- status views -------------------------------------------------------------------------
    def _age_status(self, key: str) -> str:
        """timestamp_to_status, measured on the simulated clock (a status written this round is fresh)."""
        written = self._written.get(key)
        if written is None or self.now - written > 30:
            return "old timestamp - dead?"
        return "active"

    def verbose_state(self, sid: str) -> str:
        ss = self.service_status.get(sid)
        if sid not in self.resources:
            return "deleting"
        cd = self.resource_conf(sid)
        if cd["state"] == "ignored":
            return "ignored"
        if ss is None:
            return "queued"
        cur = ss["state"]
        if cur == "error" and cd["state"] == "disabled":
            return "clearing error flag"
        if cur in ("stopped", "request_stop") and cd["state"] == "disabled":
            return "disabled" if cur == "stopped" else "stopping"
        if cur == "request_stop":
            return "stopping"
        if cur == "request_start":
            return "starting"
        if cur == "started" and not ss.get("running"):
            return "starting"
        return cur

    def status_current(self, local_node: str) -> list[dict]:
        c = self.cluster
        quorate = c.quorate(local_node)
        out = [{"id": "quorum", "type": "quorum", "node": local_node, "quorate": 1 if quorate else 0,
                "status": "OK" if quorate else f"No quorum on node '{local_node}'!"}]
        crm_active = False
        if self.master_node and self.master_timestamp:
            status = self._age_status("master")
            crm_active = status == "active"
            if quorate and status != "active" and not self.resources:
                status = "idle"
            extra = f" - {self.disarm['state']}, resource mode: {self.disarm['mode']}" if self.disarm else ""
            out.append({"id": "master", "type": "master", "node": self.master_node, "timestamp": int(self.master_timestamp),
                        "status": f"{self.master_node} ({status}, {time.ctime(self.master_timestamp)}){extra}"})
        if self.disarm:
            wd = "CRM watchdog released" if self.disarm["state"] == "disarmed" else "CRM watchdog active"
            out.append({"id": "fencing", "type": "fencing", "node": self.master_node or local_node,
                        "armed-state": self.disarm["state"], "resource_mode": self.disarm["mode"],
                        "status": f"{self.disarm['state']}, resource mode: {self.disarm['mode']} ({wd})"})
        else:
            armed = "armed" if crm_active else "standby"
            out.append({"id": "fencing", "type": "fencing", "node": self.master_node or local_node, "armed-state": armed,
                        "status": f"{armed} (CRM watchdog {'active' if crm_active else 'standby'})"})
        for node in sorted(self.node_status):
            lrm = self.lrm.get(node, {})
            ts = lrm.get("timestamp")
            if not ts:
                out.append({"id": f"lrm:{node}", "type": "lrm", "node": node, "status": f"{node} (unable to read lrm status)"})
                continue
            status = self._age_status(node)
            mode, state = lrm.get("mode", "active"), lrm.get("state", "unknown")
            active_count = sum(1 for ss in self.service_status.values()
                               if ss.get("node") == node and ss["state"] in ACTIVE_STATES)
            if status == "active" and state in ("active", "maintenance"):
                wd = "watchdog active"
            elif mode == "disarm":
                wd = "watchdog released"
            else:
                wd = "watchdog standby"
            if status == "active":
                if mode != "active":
                    status = f"{mode} mode"
                elif state == "wait_for_agent_lock" and not active_count:
                    status = "idle"
                else:
                    status = state
            elif mode in ("maintenance", "disarm"):
                status = f"{mode} mode"
            out.append({"id": f"lrm:{node}", "type": "lrm", "node": node, "timestamp": int(ts),
                        "status": f"{node} ({status}, {wd}, {time.ctime(ts)})"})
        sids = sorted(self.service_status) + sorted(s for s in self.resources if s not in self.service_status)
        for sid in sids:
            ss = self.service_status.get(sid)
            item = {"id": f"service:{sid}", "type": "service", "sid": sid}
            if ss:
                item["node"] = ss.get("node")
                item["crm_state"] = ss["state"]
            else:
                guest = self._guest(sid)
                item["node"] = guest.node if guest else None
            item["state"] = "ignore" if self.disarm and self.disarm["mode"] == "ignore" else self.verbose_state(sid)
            item["status"] = f"{sid} ({item['node'] or '---'}, {item['state']})"
            if sid in self.resources:
                cd = self.resource_conf(sid)
                item["request_state"] = cd["state"]
                for key in ("group", "max_restart", "max_relocate", "failback", "comment"):
                    if cd.get(key) is not None:
                        item[key] = cd[key]
            out.append(item)
        return out

    def manager_status(self, local_node: str) -> dict:
        status: dict = {}
        if self.master_node:
            status = {"master_node": self.master_node, "timestamp": int(self.master_timestamp or 0),
                      "node_status": dict(self.node_status),
                      "service_status": {sid: {k: (list(v) if isinstance(v, list) else v) for k, v in ss.items()
                                               if k != "frozen_from"}
                                         for sid, ss in self.service_status.items()}}
            if self.disarm:
                status["disarm"] = dict(self.disarm)
        out = {"manager_status": status, "quorum": {"node": local_node, "quorate": 1 if self.cluster.quorate(local_node) else 0}}
        if status:
            out["lrm_status"] = {}
            for node in sorted(self.node_status):
                lrm = dict(self.lrm.get(node, {}))
                lrm["results"] = dict(lrm.get("results", {}))
                if not lrm.get("timestamp"):
                    lrm = {"mode": "unknown"}
                else:
                    lrm["timestamp"] = int(lrm["timestamp"])
                out["lrm_status"][node] = lrm
        return out
