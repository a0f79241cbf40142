"""/access/roles: built-in and custom roles."""

from __future__ import annotations

from ...access import ALL_PRIVS, BUILTIN_ROLES
from ...errors import ApiError, param_errors
from ...params import P
from ...router import api
from .common import _split_list


ROLEID = P.string(optional=False, format="pve-roleid")
PRIVS = P.string(format="pve-priv-list")


def _parse_privs(text: str | None, prefix: str) -> set[str]:
    privs = set(_split_list(text))
    for priv in sorted(privs):
        if priv not in ALL_PRIVS:
            raise ApiError(500, f"{prefix}invalid privilege '{priv}'")
    return privs


@api.get("/access/roles", params={})
def list_roles(ctx, p):
    with ctx.cluster.lock:
        return [{"roleid": r, "privs": ",".join(sorted(privs)), "special": int(r in BUILTIN_ROLES)}
                for r, privs in sorted(ctx.cluster.access.roles.items())]


@api.post("/access/roles", params={"roleid": ROLEID, "privs": PRIVS})
def create_role(ctx, p):
    ctx.check("/access", "Sys.Modify")
    role = p["roleid"]
    if role.upper().startswith("PVE"):
        param_errors({"roleid": "cannot use role ID starting with the (case-insensitive) 'PVE' namespace"})
    roles = ctx.cluster.access.roles
    with ctx.cluster.lock:
        if role in roles:
            raise ApiError(500, f"create role failed: role '{role}' already exists")
        roles[role] = _parse_privs(p.get("privs"), "create role failed: ")
    return None


@api.get("/access/roles/{roleid}", params={"roleid": ROLEID})
def read_role(ctx, p):
    with ctx.cluster.lock:
        privs = ctx.cluster.access.roles.get(p["roleid"])
        if privs is None:
            raise ApiError(500, f"role '{p['roleid']}' does not exist")
        return {priv: 1 for priv in sorted(privs)}


@api.put("/access/roles/{roleid}", params={"roleid": ROLEID, "privs": PRIVS, "append": P.boolean()})
def update_role(ctx, p):
    ctx.check("/access", "Sys.Modify")
    if "append" in p and "privs" not in p:
        param_errors({"privs": "missing property - 'append' requires this property"})
    role = p["roleid"]
    if role in BUILTIN_ROLES:
        raise ApiError(500, f"auto-generated role '{role}' cannot be modified")
    roles = ctx.cluster.access.roles
    with ctx.cluster.lock:
        if role not in roles:
            raise ApiError(500, f"update role failed: role '{role}' does not exist")
        privs = _parse_privs(p.get("privs"), "update role failed: ")
        roles[role] = (roles[role] | privs) if p.get("append") else privs
    return None


@api.delete("/access/roles/{roleid}", params={"roleid": ROLEID})
def delete_role(ctx, p):
    ctx.check("/access", "Sys.Modify")
    role = p["roleid"]
    if role in BUILTIN_ROLES:
        raise ApiError(500, f"auto-generated role '{role}' cannot be deleted")
    roles = ctx.cluster.access.roles
    with ctx.cluster.lock:
        if role not in roles:
            raise ApiError(500, f"delete role failed: role '{role}' does not exist")
        del roles[role]
    return None
