"""HAManager: the state it keeps and the loop that runs the LRMs and the CRM each round."""

from __future__ import annotations

import threading
import time
from typing import TYPE_CHECKING

from .common import ROUND, _uid

if TYPE_CHECKING:
    from ..state import Cluster
from .config import ConfigMixin
from .crm import CrmMixin
from .lrm import LrmMixin
from .placement import PlacementMixin
from .rules import RulesMixin
from .status import StatusMixin


class HAManager(ConfigMixin, RulesMixin, PlacementMixin, LrmMixin, CrmMixin, StatusMixin):
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
