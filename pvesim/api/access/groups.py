"""/access/groups."""

from __future__ import annotations

from ...errors import ApiError
from ...params import P
from ...router import api


GROUPID = P.string(optional=False, format="pve-groupid")


@api.get("/access/groups", params={})
def list_groups(ctx, p):
    access = ctx.cluster.access
    with ctx.cluster.lock:
        out = []
        for g in sorted(access.groups):
            if not access.has_any(ctx.authid, f"/access/groups/{g}", ["User.Modify", "Sys.Audit", "Group.Allocate"]):
                continue
            entry = {"groupid": g, "users": ",".join(access.group_members(g))}
            if access.groups[g].get("comment"):
                entry["comment"] = access.groups[g]["comment"]
            out.append(entry)
    return out


@api.post("/access/groups", params={"groupid": GROUPID, "comment": P.string()})
def create_group(ctx, p):
    ctx.check("/access/groups", "Group.Allocate")
    access = ctx.cluster.access
    with ctx.cluster.lock:
        if p["groupid"] in access.groups:
            raise ApiError(500, f"create group failed: group '{p['groupid']}' already exists")
        access.groups[p["groupid"]] = {"comment": p.get("comment", "")}
    return None


def _group(access, groupid: str, prefix: str = "") -> dict:
    group = access.groups.get(groupid)
    if group is None:
        raise ApiError(500, f"{prefix}group '{groupid}' does not exist")
    return group


@api.get("/access/groups/{groupid}", params={"groupid": GROUPID})
def read_group(ctx, p):
    ctx.check("/access/groups", "Sys.Audit", "Group.Allocate", any=True)
    access = ctx.cluster.access
    with ctx.cluster.lock:
        group = _group(access, p["groupid"])
        out = {"members": access.group_members(p["groupid"])}
        if group.get("comment"):
            out["comment"] = group["comment"]
        return out


@api.put("/access/groups/{groupid}", params={"groupid": GROUPID, "comment": P.string()})
def update_group(ctx, p):
    ctx.check("/access/groups", "Group.Allocate")
    with ctx.cluster.lock:
        group = _group(ctx.cluster.access, p["groupid"], "update group failed: ")
        if "comment" in p:
            group["comment"] = p["comment"]
    return None


@api.delete("/access/groups/{groupid}", params={"groupid": GROUPID})
def delete_group(ctx, p):
    ctx.check("/access/groups", "Group.Allocate")
    access = ctx.cluster.access
    with ctx.cluster.lock:
        _group(access, p["groupid"], "delete group failed: ")
        access.remove_group(p["groupid"])
    return None
