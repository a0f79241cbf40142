"""The local resource managers: agent lock, watchdog, self-fencing, and the tasks they run."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from ..errors import TaskError
from .common import ACTIVE_STATES, WATCHDOG_TIMEOUT

if TYPE_CHECKING:
    from ..state import Guest

class LrmMixin:
    """The local resource managers: agent lock, watchdog, self-fencing, and the tasks they run."""

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
