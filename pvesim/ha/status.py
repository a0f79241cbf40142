"""Status views: verbose service states, status/current and manager_status."""

from __future__ import annotations

import time

from .common import ACTIVE_STATES


class StatusMixin:
    """Status views: verbose service states, status/current and manager_status."""

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
