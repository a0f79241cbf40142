"""prunebackups: the dry run (GET) and the removal task (DELETE)."""

from __future__ import annotations


from ...errors import ApiError
from ...params import P
from ...router import api
from ...state import Storage
from .schema import PRUNE_PROP
from .volumes import _check_audit, backup_subtype, prune_marks, prune_options, storage_check, volumes_on


# ---- prune -------------------------------------------------------------------------------------

_PRUNE_PARAMS = {"node": P.node(), "storage": P.storage(optional=False), "prune-backups": P.string(prop=PRUNE_PROP),
                 "type": P.enum(["qemu", "lxc"]), "vmid": P.vmid(optional=True)}


def _prune_selection(ctx, p) -> tuple[Storage, list[dict]]:
    cluster = ctx.cluster
    st = storage_check(cluster, p["storage"], p["node"])
    if "backup" not in st.content:
        raise ApiError(500, f"storage '{st.storage}' does not support backups")
    backups = [v for v in volumes_on(cluster, st, p["node"]) if v.content == "backup"
               and (not p.get("vmid") or v.vmid == p["vmid"])
               and (not p.get("type") or backup_subtype(v) == p["type"])]
    return st, prune_marks(backups, prune_options(cluster, st, p.get("prune-backups")))


@api.get("/nodes/{node}/storage/{storage}/prunebackups", params=_PRUNE_PARAMS, proxyto="node")
def prune_dryrun(ctx, p):
    _check_audit(ctx, p["storage"])
    with ctx.cluster.lock:
        return _prune_selection(ctx, p)[1]


@api.delete("/nodes/{node}/storage/{storage}/prunebackups", params=_PRUNE_PARAMS, proxyto="node")
def prune_run(ctx, p):
    cluster = ctx.cluster
    if p.get("vmid"):
        ctx.check(f"/storage/{p['storage']}", "Datastore.AllocateSpace")
        ctx.check(f"/vms/{p['vmid']}", "VM.Backup")
    else:
        ctx.check(f"/storage/{p['storage']}", "Datastore.Allocate")
    with cluster.lock:
        st, marks = _prune_selection(ctx, p)
    holder = None if st.shared else p["node"]

    def worker(t):
        t.sleep(0.5)
        removed = 0
        for entry in marks:
            if entry["mark"] != "remove":
                continue
            t.log(f"info: removing backup '{entry['volid']}'")
            with cluster.lock:
                cluster.remove_volume(entry["volid"], holder)
            removed += 1
        t.log(f"info: pruned {removed} backup(s)")

    task_id = (f"{p['vmid']}@" if p.get("vmid") else "") + st.storage
    return cluster.tasks.start(node=p["node"], type="prunebackups", id=task_id, user=ctx.authid, worker=worker)
