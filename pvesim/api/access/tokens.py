"""/access/users/{userid}/token: API tokens."""

from __future__ import annotations

import uuid

from ...errors import ApiError, param_errors
from ...params import P
from ...router import api
from .common import TOKEN_SUBID, USERID, _self_or_user_modify, _split_list
from .users import _token_info


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
