"""Effective permissions (/access/permissions) and password changes (/access/password)."""

from __future__ import annotations

from ...params import P
from ...router import api
from .common import USERID, _no_such_user, _realm_allocate, _userid_group


@api.get("/access/permissions", params={
    "userid": P.string(pattern=r"^[^\s:/]+@[A-Za-z][A-Za-z0-9.\-_]+(?:![A-Za-z][A-Za-z0-9.\-_]+)?$"),
    "path": P.string(),
})
def permissions(ctx, p):
    access = ctx.cluster.access
    authid = p.get("userid") or ctx.authid
    owner = authid.partition("!")[0] if "!" in authid else None
    if authid != ctx.authid and owner != ctx.authid:
        ctx.check("/access", "Sys.Audit")
    with ctx.cluster.lock:
        if p.get("path"):
            return {p["path"]: access.privilege_map(authid, p["path"])}
        return access.effective_permissions(authid)


@api.put("/access/password", params={
    "userid": P.string(optional=False, **USERID),
    "password": P.string(optional=False, min_length=8, max_length=64),
    "confirmation-password": P.string(min_length=5, max_length=64),
}, allowtoken=False)
def change_password(ctx, p):
    userid = p["userid"]
    access = ctx.cluster.access
    if userid not in access.users:
        _no_such_user(userid)
    if ctx.authid != userid:
        _realm_allocate(ctx, userid)
        _userid_group(ctx, userid, ["User.Modify"])
    with ctx.cluster.lock:
        access.users[userid].password = p["password"]
    return None
