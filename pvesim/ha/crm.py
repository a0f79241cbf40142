"""The cluster resource manager: master election, node states, fencing, the service state machine."""

from __future__ import annotations

import time

from .common import FENCE_DELAY, FENCEABLE, LOCK_LIFETIME, _uid


class CrmMixin:
    """The cluster resource manager: master election, node states, fencing, the service state machine."""

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
