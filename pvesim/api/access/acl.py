"""/access/acl: reading and changing ACL entries (perm-modify checks)."""

from __future__ import annotations

from ...access import Acl, check_path, normalize_path
from ...errors import ApiError, param_errors
from ...params import P
from ...router import api
from .common import _perm_fail, _split_list


def _perm_modify_privs(path: str) -> list[str]:
    """RPCEnvironment::check_perm_modify: Permissions.Modify, or the object's Allocate privilege."""
    privs = ["Permissions.Modify"]
    if path.startswith("/storage/"):
        privs.append("Datastore.Allocate")
    elif path.startswith("/vms/"):
        privs.append("VM.Allocate")
    elif path.startswith("/pool/"):
        privs.append("Pool.Allocate")
    return privs


def _can_modify_perms(ctx, path: str) -> bool:
    return ctx.cluster.access.has_any(ctx.authid, path, _perm_modify_privs(path))


@api.get("/access/acl", params={})
def read_acl(ctx, p):
    access = ctx.cluster.access
    with ctx.cluster.lock:
        audit = access.has(ctx.authid, "/access", "Sys.Audit")
        allowed: dict[str, bool] = {}
        out = []
        for a in sorted(access.acl, key=lambda a: (a.path, a.type, a.ugid, a.roleid)):
            if a.path not in allowed:
                allowed[a.path] = audit or _can_modify_perms(ctx, a.path)
            if allowed[a.path]:
                out.append({"path": a.path, "type": a.type, "ugid": a.ugid, "roleid": a.roleid,
                            "propagate": int(a.propagate)})
    return out


@api.put("/access/acl", params={
    "path": P.string(optional=False),
    "roles": P.string(optional=False, format="pve-roleid-list"),
    "users": P.string(format="pve-userid-list"),
    "groups": P.string(format="pve-groupid-list"),
    "tokens": P.string(format="pve-tokenid-list"),
    "propagate": P.boolean(default=1),
    "delete": P.boolean(),
})
def update_acl(ctx, p):
    """Add (or with delete=1 remove) each role for each user/group/token on path, all or nothing."""
    path = normalize_path(p["path"])
    if not ctx.is_root:
        if path is None:
            _perm_fail()
        ctx.check(path, *_perm_modify_privs(path), any=True)
    if not (p.get("users") or p.get("groups") or p.get("tokens")):
        param_errors({k: "either 'users', 'groups' or 'tokens' is required." for k in ("users", "groups", "tokens")})
    if path is None or (not p.get("delete") and not check_path(path)):
        param_errors({"path": f"invalid ACL path '{p['path']}'"})
    access = ctx.cluster.access
    propagate = bool(p.get("propagate", 1))
    fail = "ACL update failed: "
    with ctx.cluster.lock:
        subjects: list[tuple[str, str]] = []
        for g in _split_list(p.get("groups")):
            if g not in access.groups:
                raise ApiError(500, f"{fail}group '{g}' does not exist")
            subjects.append(("group", g))
        for u in _split_list(p.get("users")):
            if u not in access.users:
                raise ApiError(500, f"{fail}user '{u}' does not exist")
            subjects.append(("user", u))
        for t in _split_list(p.get("tokens")):
            userid, _, tokenid = t.partition("!")
            if t not in access.tokens:
                raise ApiError(500, f"{fail}no such token '{tokenid}' for user '{userid}'")
            subjects.append(("token", t))
        roles = _split_list(p["roles"])
        for role in roles:
            if role not in access.roles:
                raise ApiError(500, f"{fail}role '{role}' does not exist")
        acl = list(access.acl)
        for role in roles:
            for kind, ugid in subjects:
                acl = [a for a in acl if not (a.path == path and a.type == kind and a.ugid == ugid and a.roleid == role)]
                if not p.get("delete"):
                    acl.append(Acl(path=path, ugid=ugid, type=kind, roleid=role, propagate=propagate))
        access.acl = acl
    return None
