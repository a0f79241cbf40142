"""POST /nodes/{node}/{qemu,lxc}/{vmid}/migrate: checks, then a task."""

from __future__ import annotations

from ...errors import ApiError
from ...params import P
from ...router import api
from .resources import _ha_sid
from .checks import _bad, _check_storage_availability, _parse_storagemap, _sync_checks
from .start import _ha_migrate, start_migration


@api.post("/nodes/{node}/qemu/{vmid}/migrate", params={
    "node": P.node(), "vmid": P.vmid(), "target": P.string(optional=False, format="pve-node"),
    "online": P.boolean(), "force": P.boolean(), "migration_type": P.enum(["secure", "insecure"]),
    "migration_network": P.string(format="CIDR"), "with-local-disks": P.boolean(),
    "targetstorage": P.string(), "bwlimit": P.integer(minimum=0), "with-conntrack-state": P.boolean(),
}, proxyto="node")
def qemu_migrate(ctx, p):
    ctx.check(f"/vms/{p['vmid']}", "VM.Migrate")
    cluster = ctx.cluster
    for key in ("force", "migration_type", "migration_network"):
        if p.get(key) and not ctx.is_root:
            _bad(key, "Only root may use this option.")
    with cluster.lock:
        guest, ip = _sync_checks(ctx, p, "qemu")
        running = guest.status == "running"
        if running and not p.get("online"):
            raise ApiError(500, "can't migrate running VM without --online")
        storagemap = _parse_storagemap(p.get("targetstorage"), "targetstorage")
        for sid in set(storagemap.values()):
            ctx.check(f"/storage/{sid}", "Datastore.AllocateSpace")
            st = cluster.storage(sid, p["target"])
            if "images" not in st.content:
                raise ApiError(500, f"storage '{sid}' does not support vm images")
        _check_storage_availability(cluster, guest, p["target"], storagemap)
        sid = _ha_sid(cluster, guest)
    if sid and not getattr(ctx, "from_ha", False):
        return _ha_migrate(ctx, guest, sid, p["target"])
    opts = {"online": bool(p.get("online")) and running, "force": bool(p.get("force")),
            "with-local-disks": bool(p.get("with-local-disks")), "storagemap": storagemap}
    return start_migration(cluster, guest, p["node"], p["target"], ctx.authid, opts)


@api.post("/nodes/{node}/lxc/{vmid}/migrate", params={
    "node": P.node(), "vmid": P.vmid(), "target": P.string(optional=False, format="pve-node"),
    "online": P.boolean(), "restart": P.boolean(), "timeout": P.integer(), "target-storage": P.string(),
    "bwlimit": P.number(minimum=0),
}, proxyto="node")
def lxc_migrate(ctx, p):
    ctx.check(f"/vms/{p['vmid']}", "VM.Migrate")
    cluster = ctx.cluster
    with cluster.lock:
        guest, ip = _sync_checks(ctx, p, "lxc")
        running = guest.status == "running"
        if running and not p.get("online") and not p.get("restart"):
            raise ApiError(500, "can't migrate running container without --online or --restart")
        storagemap = _parse_storagemap(p.get("target-storage"), "target-storage")
        for sid in set(storagemap.values()):
            ctx.check(f"/storage/{sid}", "Datastore.AllocateSpace")
            cluster.storage(sid, p["target"])
        sid = _ha_sid(cluster, guest)
    if sid and not getattr(ctx, "from_ha", False):
        return _ha_migrate(ctx, guest, sid, p["target"])
    opts = {"online": bool(p.get("online")), "restart": bool(p.get("restart")), "timeout": p.get("timeout", 180),
            "storagemap": storagemap, "force": False, "with-local-disks": True}
    return start_migration(cluster, guest, p["node"], p["target"], ctx.authid, opts)
