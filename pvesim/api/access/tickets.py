"""Tickets, realms and the /access index."""

from __future__ import annotations

import re

from ...errors import ApiError
from ...params import P
from ...router import api


@api.post("/access/ticket", params={
    "username": P.string(optional=False, max_length=64),
    "password": P.string(optional=False),
    "realm": P.string(format="pve-realm", max_length=32),
    "otp": P.string(),
    "tfa-challenge": P.string(),
    "path": P.string(max_length=64),
    "privs": P.string(max_length=64),
    "new-format": P.boolean(),
}, auth=False, allowtoken=False, quorum=False)
def create_ticket(ctx, p):
    access = ctx.cluster.access
    userid = access.login(p["username"], p["password"], p.get("realm"))
    if userid is None:
        raise ApiError(401, "authentication failure")
    out = {"username": userid, "ticket": access.make_ticket(userid), "CSRFPreventionToken": access.make_csrf(userid),
           "cap": _capabilities(ctx.cluster, userid)}
    if access.has(userid, "/", "Sys.Audit"):
        out["clustername"] = ctx.cluster.name
    return out


def _capabilities(cluster, authid):
    """RPCEnvironment::compute_api_permission: privileges per GUI area, from top paths and ACL paths."""
    access = cluster.access
    areas = {"vms": r"VM\.|Permissions\.Modify", "access": r"(User|Group)\.|Permissions\.Modify",
             "storage": r"Datastore\.|Permissions\.Modify", "nodes": r"Sys\.|Permissions\.Modify",
             "sdn": r"SDN\.|Permissions\.Modify", "dc": r"Sys\.Audit|Sys\.Modify|SDN\.",
             "mapping": r"Mapping\.|Permissions.Modify"}
    out: dict[str, dict[str, int]] = {k: {} for k in areas}
    paths = ["/", "/nodes", "/access/groups", "/vms", "/storage", "/sdn", "/mapping"] + [a.path for a in access.acl]
    for path in dict.fromkeys(paths):
        privs = access.privilege_map(authid, path)
        top = path.strip("/").split("/")[0] or "dc"
        if top == "pool":
            for priv in privs:
                if priv.startswith("VM."):
                    out["vms"][priv] = 1
                elif priv.startswith("Datastore."):
                    out["storage"][priv] = 1
                elif priv == "Permissions.Modify":
                    out["vms"][priv] = out["storage"][priv] = 1
        elif top in areas:
            for priv in privs:
                if re.match(areas[top], priv):
                    out[top][priv] = 1
    return out


@api.get("/access/domains", params={}, auth=False)
def domains(ctx, p):
    realms = ctx.cluster.access.realms
    return [{"realm": r, "type": r, "comment": c} for r, c in realms.items()]


@api.get("/access", params={})
def index(ctx, p):
    return [{"subdir": s} for s in ("users", "groups", "roles", "acl", "domains", "openid", "tfa", "ticket",
                                    "password", "permissions")]
