"""/access: tickets, realms (and users, groups, roles, ACLs, tokens)."""

from ..errors import ApiError
from ..params import P
from ..router import api


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


def _capabilities(cluster, userid):
    privs = cluster.access.privileges(userid, "/")
    groups = {"vms": "VM.", "storage": "Datastore.", "access": ("User.", "Group.", "Realm.", "Permissions."),
              "nodes": "Sys.", "dc": ("Sys.Audit", "SDN."), "mapping": "Mapping."}
    return {name: {p: 1 for p in privs if p.startswith(prefix)} for name, prefix in groups.items()}


@api.get("/access/domains", params={}, auth=False)
def domains(ctx, p):
    realms = ctx.cluster.access.realms
    return [{"realm": r, "type": r, "comment": c} for r, c in realms.items()]
