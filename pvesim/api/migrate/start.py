"""Starting a migration: a qmigrate/vzmigrate task, or an HA migration request for HA-managed guests."""

from __future__ import annotations

import time

from ...errors import ApiError, TaskError
from ...state import Cluster, Guest
from .steps import _task_clock
from .qemu import _qemu_worker
from .lxc import _lxc_worker


def _ha_migrate(ctx, guest: Guest, sid: str, target: str) -> str:
    cluster = ctx.cluster
    word = "VM" if guest.type == "qemu" else "CT"

    def worker(t):
        t.log(f"Requesting HA migration for {word} {guest.vmid} to node {target}")
        t.sleep(0.5)
        try:
            cluster.ha.migrate(sid, target)
        except ApiError as exc:
            raise TaskError(exc.message) from None

    return cluster.tasks.start(node=guest.node, type="hamigrate", id=guest.vmid, user=ctx.authid, worker=worker)


def start_migration(cluster: Cluster, guest: Guest, source: str, target: str, user: str, opts: dict) -> str:
    """Start a `qmigrate`/`vzmigrate` task; its worker implements PVE's prepare/phase1..3."""
    ip = cluster.nodes[target].ip
    task_type = "qmigrate" if guest.type == "qemu" else "vzmigrate"
    worker = _qemu_worker if guest.type == "qemu" else _lxc_worker

    def run(t):
        _task_clock.base, _task_clock.scale = time.time(), cluster.clock.scale
        worker(t, cluster, guest, source, target, ip, opts)

    return cluster.tasks.start(node=source, type=task_type, id=guest.vmid, user=user, worker=run)
