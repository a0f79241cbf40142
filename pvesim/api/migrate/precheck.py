"""The migration prechecks: GET /nodes/{node}/{qemu,lxc}/{vmid}/migrate."""

from __future__ import annotations

from ...params import P
from ...router import api
from ..guests import check_lock
from .resources import _ha_sid, local_disks, local_resources, unavailable_storages


def _split_targets(cluster, node: str, storages: dict, missing: dict) -> tuple[list, dict]:
    """Every other node, allowed or refused with its reasons (unavailable storages, mapped devices)."""
    allowed, refused = [], {}
    for other in cluster.nodes:
        if other == node:
            continue
        reasons: dict = {}
        if other in storages:
            reasons["unavailable_storages"] = storages[other]
        if missing.get(other):
            reasons["unavailable-resources"] = missing[other]
        if reasons:
            refused[other] = reasons
        else:
            allowed.append(other)
    return allowed, refused


@api.get("/nodes/{node}/qemu/{vmid}/migrate", params={"node": P.node(), "vmid": P.vmid(),
                                                      "target": P.string(format="pve-node")}, proxyto="node")
def qemu_precondition(ctx, p):
    ctx.check(f"/vms/{p['vmid']}", "VM.Migrate")
    cluster, node = ctx.cluster, p["node"]
    cluster.require_quorum(node)
    with cluster.lock:
        guest = cluster.guest(p["vmid"], "qemu", node)
        check_lock(guest)
        running = guest.status == "running"
        blockers, mapped, missing = local_resources(cluster, guest, running)
        storages = unavailable_storages(cluster, guest)
        allowed, refused = _split_targets(cluster, node, storages, missing)
        res = {"running": 1 if running else 0, "allowed_nodes": allowed, "not_allowed_nodes": refused}
        if _ha_sid(cluster, guest):
            res["dependent-ha-resources"] = []
        res["local_disks"] = local_disks(cluster, guest)
        res["local_resources"] = blockers
        res["mapped-resources"] = sorted(mapped)
        res["mapped-resource-info"] = mapped
        res["has-dbus-vmstate"] = 1
        return res


@api.get("/nodes/{node}/lxc/{vmid}/migrate", params={"node": P.node(), "vmid": P.vmid(),
                                                     "target": P.string(format="pve-node")}, proxyto="node")
def lxc_precondition(ctx, p):
    ctx.check(f"/vms/{p['vmid']}", "VM.Migrate")
    cluster, node = ctx.cluster, p["node"]
    cluster.require_quorum(node)
    with cluster.lock:
        guest = cluster.guest(p["vmid"], "lxc", node)
        check_lock(guest)
        storages = unavailable_storages(cluster, guest)
        allowed, refused = _split_targets(cluster, node, storages, {})
        # pve-container spells these keys with dashes, qemu-server with underscores.
        res = {"running": 1 if guest.status == "running" else 0, "allowed-nodes": allowed, "not-allowed-nodes": refused}
        if _ha_sid(cluster, guest):
            res["dependent-ha-resources"] = []
        return res
