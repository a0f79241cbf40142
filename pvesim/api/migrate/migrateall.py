"""POST /nodes/{node}/migrateall: migrate a node's guests one after the other."""

from __future__ import annotations

import re

from ...errors import ApiError, TaskError
from ...params import P
from ...router import api
from .checks import _bad
from .start import start_migration


@api.post("/nodes/{node}/migrateall", params={
    "node": P.node(), "target": P.string(optional=False, format="pve-node"), "vms": P.string(format="pve-vmid-list"),
    "with-local-disks": P.boolean(), "maxworkers": P.integer(minimum=1, maximum=64),
    "max-workers": P.integer(minimum=1, maximum=64)}, proxyto="node")
def migrate_all(ctx, p):
    cluster, node, target = ctx.cluster, p["node"], p["target"]
    if target == node:
        _bad("target", "target is local node.")
    cluster.require_quorum(node)
    if target not in cluster.nodes:
        raise ApiError(500, f"no such cluster node '{target}'")
    wanted = {int(v) for v in re.split(r"[,;\s]+", p.get("vms", "")) if v}
    with cluster.lock:
        guests = sorted((g for g in cluster.guests.values() if g.node == node and (not wanted or g.vmid in wanted)
                         and not g.is_template), key=lambda g: g.vmid)
        if wanted:
            for vmid in wanted:
                ctx.check(f"/vms/{vmid}", "VM.Migrate")
        else:
            ctx.check("/", "VM.Migrate")
    user = ctx.authid

    def worker(t):
        failed = 0
        for guest in guests:
            with cluster.lock:
                running = guest.status == "running"
                if guest.lock or guest.node != node:
                    continue
                opts = {"online": running and guest.type == "qemu", "restart": running and guest.type == "lxc",
                        "force": False, "with-local-disks": bool(p.get("with-local-disks")) or guest.type == "lxc",
                        "storagemap": {}, "timeout": 180}
                upid = start_migration(cluster, guest, node, target, user, opts)
            t.log(f"Starting migration of {guest.kind} {guest.vmid}")
            while True:
                task = cluster.tasks.get(upid)
                if task is None or task.status == "stopped":
                    break
                t.sleep(1)
            if task is not None and task.exitstatus != "OK":
                failed += 1
                t.log(f"migration of {guest.kind} {guest.vmid} failed: {task.exitstatus}")
        if failed:
            raise TaskError(f"{failed} migration(s) failed")

    return cluster.tasks.start(node=node, type="migrateall", id="", user=user, worker=worker)
