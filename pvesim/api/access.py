"""/access: tickets, realms, users, API tokens, groups, roles, ACLs, permissions (pve-semantics §1.3, §6).

Permission checks follow the schema's `permissions` of each endpoint (RPCEnvironment's
`userid-group`, `userid-param`, `perm-modify` tests); errors inside a config change carry PVE's
"<action> failed: " prefix (lock_user_config). Every change is validated before anything is written.
"""

from __future__ import annotations

import re
import uuid

from ..access import ALL_PRIVS, BUILTIN_ROLES, Acl, User, check_path, normalize_path
from ..errors import ApiError, param_errors
from ..params import P
from ..router import api

USERID = dict(format="pve-userid", max_length=64)
TOKEN_SUBID = r"[A-Za-z][A-Za-z0-9.\-_]+"
LOG_LEVELS = ["emerg", "alert", "crit", "err", "warning", "notice", "info", "debug", "nolog"]


# ---- tickets and realms --------------------------------------------------------------------

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


# ---- permission tests of the schema (RPCEnvironment::exec_api2_perm_check) -----------------

def _perm_fail(what: str | None = None):
    raise ApiError(403, f"Permission check failed ({what})" if what else "Permission check failed")


def _no_such_user(userid: str):
    raise ApiError(500, f"no such user ('{userid}')")


def _userid_group(ctx, userid: str, privs: list[str], groups_param: str | None = None, groups: str | None = None):
    """`userid-group`: the privileges on /access/groups, or on every named group / a group of the user."""
    if ctx.is_root:
        return
    access = ctx.cluster.access
    check_existing = groups_param != "create"
    if check_existing and userid not in access.users:
        _no_such_user(userid)
    if access.has_any(ctx.authid, "/access/groups", privs):
        return
    allowed = {g for g in access.groups if access.has_any(ctx.authid, f"/access/groups/{g}", privs)}
    if groups_param:
        wanted = _split_list(groups)
        if not wanted:
            _perm_fail(f"/access/groups, {'|'.join(privs)}")
        for g in wanted:
            if g not in allowed:
                _perm_fail(f"/access/groups/{g}, {'|'.join(privs)}")
    if check_existing and not any(g in allowed for g in access.users[userid].groups):
        _perm_fail()


def _realm_allocate(ctx, userid: str):
    """`userid-param Realm.AllocateUser`: the privilege on the user's realm."""
    if not ctx.is_root:
        ctx.check(f"/access/realm/{userid.rsplit('@', 1)[1]}", "Realm.AllocateUser")


def _self_or_user_modify(ctx, userid: str):
    """`or(userid-param self, userid-group User.Modify)` of the token endpoints."""
    if userid not in ctx.cluster.access.users:
        _no_such_user(userid)
    if ctx.authid == userid:
        return
    _userid_group(ctx, userid, ["User.Modify"])


def _split_list(text: str | None) -> list[str]:
    return [x for x in re.split(r"[,;\s\0]+", text or "") if x]


# ---- users ---------------------------------------------------------------------------------

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


# ---- API tokens ----------------------------------------------------------------------------

TOKEN_FIELDS = {
    "comment": P.string(),
    "expire": P.integer(minimum=0),
    "privsep": P.boolean(default=1),
}
TOKEN_PATH = {"userid": P.string(optional=False, **USERID), "tokenid": P.string(optional=False, pattern=TOKEN_SUBID)}


def _token(access, userid: str, tokenid: str, prefix: str = ""):
    token = access.tokens.get(f"{userid}!{tokenid}")
    if token is None:
        raise ApiError(500, f"{prefix}no such token '{tokenid}' for user '{userid}'")
    return token


@api.get("/access/users/{userid}/token", params={"userid": P.string(optional=False, **USERID)})
def list_tokens(ctx, p):
    _self_or_user_modify(ctx, p["userid"])
    access = ctx.cluster.access
    with ctx.cluster.lock:
        tokens = sorted((t for t in access.tokens.values() if t.userid == p["userid"]), key=lambda t: t.tokenid)
        return [{"tokenid": t.tokenid, **_token_info(t)} for t in tokens]


@api.get("/access/users/{userid}/token/{tokenid}", params=dict(TOKEN_PATH))
def read_token(ctx, p):
    _self_or_user_modify(ctx, p["userid"])
    with ctx.cluster.lock:
        return _token_info(_token(ctx.cluster.access, p["userid"], p["tokenid"]))


@api.post("/access/users/{userid}/token/{tokenid}", params={**TOKEN_PATH, **TOKEN_FIELDS})
def create_token(ctx, p):
    """The secret is in the answer only: it cannot be read back later."""
    _self_or_user_modify(ctx, p["userid"])
    access = ctx.cluster.access
    with ctx.cluster.lock:
        full = f"{p['userid']}!{p['tokenid']}"
        if full in access.tokens:
            param_errors({"tokenid": "Token already exists."})
        token = access.add_token(p["userid"], p["tokenid"], str(uuid.uuid4()), privsep=bool(p.get("privsep", 1)),
                                 comment=p.get("comment", ""), expire=p.get("expire"))
        return {"full-tokenid": full, "info": _token_info(token), "value": token.secret}


@api.put("/access/users/{userid}/token/{tokenid}", params={
    **TOKEN_PATH, **TOKEN_FIELDS, "delete": P.string(format="pve-configid-list"),
})
def update_token(ctx, p):
    _self_or_user_modify(ctx, p["userid"])
    with ctx.cluster.lock:
        token = _token(ctx.cluster.access, p["userid"], p["tokenid"], "updating token info failed: ")
        for key in _split_list(p.get("delete")):
            if key == "comment":
                token.comment = ""
            elif key == "expire":
                token.expire = None
            elif key != "privsep":
                param_errors({"delete": f"invalid property '{key}'"})
        if "privsep" in p:
            token.privsep = bool(p["privsep"])
        if "expire" in p:
            token.expire = int(p["expire"])
        if "comment" in p:
            token.comment = p["comment"]
        return _token_info(token)


@api.delete("/access/users/{userid}/token/{tokenid}", params=dict(TOKEN_PATH))
def delete_token(ctx, p):
    _self_or_user_modify(ctx, p["userid"])
    access = ctx.cluster.access
    with ctx.cluster.lock:
        token = _token(access, p["userid"], p["tokenid"])
        access.remove_token(token.full)
    return None


# ---- groups --------------------------------------------------------------------------------

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


# ---- roles ---------------------------------------------------------------------------------

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


# ---- ACLs ----------------------------------------------------------------------------------

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


# ---- effective permissions and passwords ---------------------------------------------------

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
