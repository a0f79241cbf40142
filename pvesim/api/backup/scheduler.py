"""pvescheduler for backup jobs, and install() which loads archives and jobs from the scenario."""

from __future__ import annotations

import threading
import time

from ...state import Cluster
from .. import storage as storage_api
from .calendar import CalendarEvent
from .common import VZDUMP_OPTS, _clean_config, included_guests
from .vzdump import start_backup_task


def install(cluster: Cluster, scenario: dict) -> None:
    """Backup archives keep the guest config they were made from; scenario backups get one too."""
    with cluster.lock:
        cluster.backup_archives = {}  # volume key -> {"type": qemu|lxc, "config": dict}
        cluster.vzdump_locks = {name: threading.Lock() for name in cluster.nodes}
        for key, vol in cluster.volumes.items():
            sub = storage_api.backup_subtype(vol) if vol.content == "backup" else None
            if sub and vol.vmid in cluster.guests and cluster.guests[vol.vmid].type == sub:
                cluster.backup_archives[key] = {"type": sub, "config": _clean_config(cluster.guests[vol.vmid].config)}
        for job in scenario.get("backup_jobs", []):
            job = dict(job)
            cluster.backup_jobs[job.pop("id")] = {"type": "vzdump", "enabled": 1, **job}
        scheduler = BackupScheduler(cluster)
        cluster.background.append(scheduler)
        scheduler.start()


# ---- scheduler ---------------------------------------------------------------------------------

class BackupScheduler:
    """pvescheduler for backup jobs: starts a vzdump task per node when a job's time has come."""

    def __init__(self, cluster: Cluster, interval: float = 1.0):
        self.cluster = cluster
        self.interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="pvesim-backup-scheduler", daemon=True)
        self._started = time.time()

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.run_due(time.time())
            except Exception:  # the scheduler must survive a bad job definition
                pass

    def run_due(self, now: float) -> list[str]:
        cluster = self.cluster
        upids = []
        with cluster.lock:
            for job_id, job in cluster.backup_jobs.items():
                if not int(job.get("enabled", 1)):
                    continue
                last = job.get("_last", self._started)
                try:
                    nxt = CalendarEvent(job["schedule"]).next_after(last)
                except (ValueError, IndexError, KeyError):
                    continue
                if nxt is None or nxt > now:
                    continue
                job["_last"] = now
                for node, vmids in included_guests(cluster, job).items():
                    if not node or not cluster.nodes[node].online or not cluster.quorate(node):
                        continue
                    opts = {k: v for k, v in job.items() if k in VZDUMP_OPTS and k not in ("vmid",)}
                    if job.get("vmid"):
                        opts["vmid"] = ",".join(str(v) for v in vmids)
                    opts["job-id"] = job_id
                    upids.append(start_backup_task(cluster, node, sorted(vmids), opts, "root@pam",
                                                   str(vmids[0]) if len(vmids) == 1 else ""))
        return upids
