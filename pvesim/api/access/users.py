"""/access/users: users (list, create, read, update, delete)."""

from __future__ import annotations

from ...access import User
from ...errors import ApiError, param_errors
from ...params import P
from ...router import api
from .common import USERID, _no_such_user, _realm_allocate, _split_list, _userid_group


USER_FIELDS = {
    "enable": P.boolean(default=1),
    "expire": P.integer(minimum=0),
    "firstname": P.string(max_length=1024),
    "lastname": P.string(max_length=1024),
    "email": P.string(format="email-opt", max_length=254),
    "comment": P.string(max_length=2048),
    "keys": P.string(pattern=r"[0-9a-zA-Z!=]{0,4096}"),
    "groups": P.string(format="pve-groupid-list"),
}


def _user_entry(access, user: User, full: bool) -> dict:
    out = {"enable": int(user.enable), "expire": int(user.expire)}
    for key in ("firstname", "lastname", "email", "comment", "keys"):
        value = getattr(user, key, "")
        if value:
            out[key] = value
    if full:
        out["groups"] = sorted(user.groups)
        out["tokens"] = {t.tokenid: _token_info(t) for t in access.tokens.values() if t.userid == user.userid}
    return out


def _token_info(token) -> dict:
    out = {"privsep": int(token.privsep)}
    if token.expire is not None:
        out["expire"] = int(token.expire)
    if token.comment:
        out["comment"] = token.comment
    return out


@api.get("/access/users", params={"enabled": P.boolean(), "full": P.boolean(default=0)})
def list_users(ctx, p):
    access = ctx.cluster.access
    privs = ["User.Modify", "Sys.Audit"]
    with ctx.cluster.lock:
        see_all = access.has_any(ctx.authid, "/access/groups", privs)
        allowed_groups = {g for g in access.groups if access.has_any(ctx.authid, f"/access/groups/{g}", privs)}
        out = []
        for userid in sorted(access.users):
            user = access.users[userid]
            if not (see_all or userid == ctx.authid or user.groups & allowed_groups):
                continue
            if "enabled" in p and bool(p["enabled"]) != bool(user.enable):
                continue
            entry = _user_entry(access, user, bool(p.get("full")))
            if "groups" in entry:
                entry["groups"] = ",".join(entry["groups"])
                entry["tokens"] = [{"tokenid": k, **v} for k, v in sorted(entry["tokens"].items())]
            realm = userid.rsplit("@", 1)[1]
            if realm in access.realms:
                entry["realm-type"] = realm
            entry["userid"] = userid
            out.append(entry)
    return out


@api.post("/access/users", params={
    "userid": P.string(optional=False, **USERID),
    "password": P.string(min_length=8, max_length=64),
    **USER_FIELDS,
})
def create_user(ctx, p):
    userid = p["userid"]
    _realm_allocate(ctx, userid)
    _userid_group(ctx, userid, ["User.Modify"], groups_param="create", groups=p.get("groups"))
    access = ctx.cluster.access
    with ctx.cluster.lock:
        if userid in access.users:
            raise ApiError(500, f"create user failed: user '{userid}' already exists")
        groups = _split_list(p.get("groups"))
        for g in groups:
            if g not in access.groups:
                raise ApiError(500, f"create user failed: no such group '{g}'")
        realm = userid.rsplit("@", 1)[1]
        if "password" in p and realm not in access.realms:
            raise ApiError(500, f"create user failed: authentication domain '{realm}' does not exist")
        user = User(userid=userid, enable=bool(p.get("enable", 1)), expire=int(p.get("expire", 0)),
                    password=p.get("password"), groups=set(groups))
        for key in ("firstname", "lastname", "email", "comment", "keys"):
            if p.get(key):
                setattr(user, key, p[key])
        access.users[userid] = user
        access.changed()
    return None


@api.get("/access/users/{userid}", params={"userid": P.string(optional=False, **USERID)})
def read_user(ctx, p):
    _userid_group(ctx, p["userid"], ["User.Modify", "Sys.Audit"])
    access = ctx.cluster.access
    with ctx.cluster.lock:
        user = access.users.get(p["userid"])
        if user is None:
            _no_such_user(p["userid"])
        return _user_entry(access, user, full=True)


@api.put("/access/users/{userid}", params={
    "userid": P.string(optional=False, **USERID),
    "append": P.boolean(),
    **USER_FIELDS,
})
def update_user(ctx, p):
    if "append" in p and "groups" not in p:
        param_errors({"groups": "missing property - 'append' requires this property"})
    userid = p["userid"]
    _userid_group(ctx, userid, ["User.Modify"], groups_param="update" if "groups" in p else None, groups=p.get("groups"))
    access = ctx.cluster.access
    with ctx.cluster.lock:
        user = access.users.get(userid)
        if user is None:
            raise ApiError(500, f"update user failed: no such user ('{userid}')")
        groups = _split_list(p.get("groups"))
        for g in groups:
            if g not in access.groups:
                raise ApiError(500, f"update user failed: no such group '{g}'")
        if "enable" in p:
            user.enable = bool(p["enable"])
        if "expire" in p:
            user.expire = int(p["expire"])
        if "groups" in p:
            user.groups = (user.groups if p.get("append") else set()) | set(groups)
            access.changed()
        for key in ("firstname", "lastname", "email", "comment", "keys"):
            if key in p:
                setattr(user, key, p[key])
    return None


@api.delete("/access/users/{userid}", params={"userid": P.string(optional=False, **USERID)})
def delete_user(ctx, p):
    userid = p["userid"]
    _realm_allocate(ctx, userid)
    _userid_group(ctx, userid, ["User.Modify"])
    access = ctx.cluster.access
    with ctx.cluster.lock:
        if userid not in access.users:
            raise ApiError(500, f"delete user failed: no such user ('{userid}')")
        access.remove_user(userid)
        access.changed()
    return None
