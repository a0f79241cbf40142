"""Shared declarations and the schema's permission tests (RPCEnvironment::exec_api2_perm_check)."""

from __future__ import annotations

import re

from ...errors import ApiError


USERID = dict(format="pve-userid", max_length=64)
TOKEN_SUBID = r"[A-Za-z][A-Za-z0-9.\-_]+"
LOG_LEVELS = ["emerg", "alert", "crit", "err", "warning", "notice", "info", "debug", "nolog"]


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
