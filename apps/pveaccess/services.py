"""Proxmox access management: reads and writes of a cluster's realms, users, groups, roles, ACL
entries and Proxmox API tokens, and the effective privileges of a user or token on a path.

Every write is the policy's `pveaccess.manage` (operators), checked first; its input is checked
against what Proxmox holds before anything is sent (field errors naming the field, nothing sent),
then one Proxmox call is made (outside any database transaction), then one audit entry is written
with the result. Proxmox refusing the change is a ValidationError with Proxmox's words (audited
as a failure); a cluster that cannot be reached is `Unavailable`. Secrets (passwords, a new
token's value) never reach the audit log or the database.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from django.core.exceptions import ValidationError

from apps.core.models import AuditResult
from apps.core.services import audit_log
from apps.nodes.models import Cluster
from apps.permissions import policy
from apps.proxmox import access as pve_access
from apps.proxmox.errors import (
    ProxmoxAuthError,
    ProxmoxError,
    ProxmoxTLSError,
    ProxmoxUnreachable,
)

MANAGE = "pveaccess.manage"


class Unavailable(Exception):
    """The cluster did not answer (or refused the portal's own token): nothing was changed."""

    def __init__(self, cluster: Cluster, error: ProxmoxError):
        self.cluster, self.error = cluster, error
        super().__init__(f"Proxmox cluster {cluster.name} is not available: {error}")


_UNAVAILABLE = (ProxmoxUnreachable, ProxmoxTLSError, ProxmoxAuthError)


def _read(cluster: Cluster, fn, *args, **kwargs):
    try:
        with cluster.client() as client:
            return fn(client, *args, **kwargs)
    except ProxmoxError as exc:  # unreachable, or the portal's token may not read this
        raise Unavailable(cluster, exc) from exc


# --- reads ------------------------------------------------------------------------------------------


def access_config(*, cluster: Cluster, with_pools: bool = True) -> pve_access.AccessConfig:
    """Users (with groups and tokens), groups, roles, ACL and pools, read live from Proxmox."""
    return _read(cluster, pve_access.config, with_pools=with_pools)


def _fresh(cluster: Cluster, cfg: pve_access.AccessConfig | None) -> pve_access.AccessConfig:
    """What a write is checked against: the caller's reading of this request, or a new one."""
    return cfg if cfg is not None else access_config(cluster=cluster, with_pools=False)


def realm_list(*, cluster: Cluster) -> list[pve_access.Realm]:
    return _read(cluster, pve_access.realms)


@dataclass(frozen=True)
class EffectiveAnswer:
    """The portal's computation (with the entries that decide) beside Proxmox's own answer."""

    effective: pve_access.Effective
    proxmox: dict[str, bool]

    @property
    def agrees(self) -> bool:
        return self.effective.privileges == self.proxmox


def effective_privileges(*, cluster: Cluster, authid: str, path: str) -> EffectiveAnswer:
    """What `authid` (user id or `user@realm!token`) may do on ACL path `path`, computed by
    Proxmox's rules from its configuration, and what Proxmox itself answers for the same question."""
    errors = {}
    userid, name = pve_access.split_tokenid(authid.strip())
    if pve_access.userid_error(userid) or (name is not None and not pve_access.TOKEN_NAME_RE.match(name)):
        errors["authid"] = [f"'{authid}' is neither a user id (name@realm) nor a token id (name@realm!token)"]
    if pve_access.acl_path_error(path):
        errors["path"] = [pve_access.acl_path_error(path)]
    if errors:
        raise ValidationError(errors)
    authid, path = authid.strip(), pve_access.normalize_path(path)

    def both(client):
        cfg = pve_access.config(client)
        return cfg, pve_access.permissions(client, authid, path).get(path, {})

    cfg, theirs = _read(cluster, both)
    return EffectiveAnswer(effective=pve_access.effective(cfg, authid, path), proxmox=theirs)


# --- writes -----------------------------------------------------------------------------------------


def _write(*, actor, cluster: Cluster, action: str, target: str, detail: dict, request, call) -> object:
    """One Proxmox write with its audit entry: Proxmox's refusal is a ValidationError (audited)."""
    try:
        with cluster.client() as client:
            result = call(client)
    except _UNAVAILABLE as exc:
        _audit(actor, cluster, action, target, AuditResult.FAILURE, request, {**detail, "error": str(exc)})
        raise Unavailable(cluster, exc) from exc
    except ProxmoxError as exc:
        _audit(actor, cluster, action, target, AuditResult.FAILURE, request, {**detail, "error": str(exc)})
        errors = {k: [str(v)] for k, v in (exc.errors or {}).items()}
        raise ValidationError(errors or {"__all__": [f"Proxmox refused: {exc.message}"]}) from exc
    _audit(actor, cluster, action, target, AuditResult.SUCCESS, request, detail)
    return result


def _audit(actor, cluster, action, target, result, request, detail) -> None:
    audit_log(user=policy.as_actor(actor).user, action=action, target=f"{cluster.name}: {target}", result=result,
              request=request, detail={"cluster": cluster.pk, **detail})


def _check(actor, request) -> None:
    policy.check(actor, MANAGE, request=request)


def _portal_user(cluster: Cluster) -> str:
    return pve_access.split_tokenid(cluster.token_id)[0]


def user_create(*, actor, cluster: Cluster, userid: str, password: str = "", groups: tuple[str, ...] = (),
                comment: str = "", email: str = "", firstname: str = "", lastname: str = "",
                enable: bool = True, expire: dt.date | None = None, cfg=None, request=None) -> None:
    """Create a Proxmox user. Field errors (userid format, unknown realm or group, an existing
    user, a password outside the pve realm) before anything is sent."""
    _check(actor, request)
    errors: dict[str, list[str]] = {}
    if pve_access.userid_error(userid):
        raise ValidationError({"userid": [pve_access.userid_error(userid)]})
    cfg = _fresh(cluster, cfg)
    realms = {r.realm for r in realm_list(cluster=cluster)}
    realm = userid.rsplit("@", 1)[1]
    if realm not in realms:
        errors["userid"] = [f"this cluster has no realm '{realm}' (realms: {', '.join(sorted(realms))})"]
    elif cfg.user(userid) is not None:
        errors["userid"] = [f"user {userid} already exists"]
    unknown = sorted(set(groups) - {g.groupid for g in cfg.groups})
    if unknown:
        errors["groups"] = [f"no such group: {', '.join(unknown)}"]
    if password and realm != "pve":
        errors["password"] = [f"Proxmox keeps passwords for the pve realm only; {realm} users log in with that realm's"]
    elif password and not 8 <= len(password) <= 64:
        errors["password"] = ["a password has 8 to 64 characters"]
    if errors:
        raise ValidationError(errors)
    expire_at = int(dt.datetime.combine(expire, dt.time(), tzinfo=dt.UTC).timestamp()) if expire else 0
    _write(actor=actor, cluster=cluster, action="pveaccess.user_create", target=f"user {userid}", request=request,
           detail={"userid": userid, "groups": list(groups), "enable": enable, "expire": expire_at},
           call=lambda c: pve_access.user_create(c, userid, password=password or None, groups=tuple(groups),
                                                 comment=comment, email=email, firstname=firstname,
                                                 lastname=lastname, enable=enable, expire=expire_at))


def user_update(*, actor, cluster: Cluster, userid: str, groups: tuple[str, ...] | None = None,
                enable: bool | None = None, comment: str | None = None, email: str | None = None, cfg=None,
                request=None) -> None:
    """Change a user's groups (replaced), enabled flag, comment or e-mail; what is None stays. The
    portal's own user is not disabled here."""
    _check(actor, request)
    cfg = _fresh(cluster, cfg)
    errors: dict[str, list[str]] = {}
    if cfg.user(userid) is None:
        errors["userid"] = [f"no such user {userid}"]
    unknown = sorted(set(groups or ()) - {g.groupid for g in cfg.groups})
    if unknown:
        errors["groups"] = [f"no such group: {', '.join(unknown)}"]
    if enable is False and userid in (pve_access.ROOT, _portal_user(cluster)):
        errors["enable"] = [f"{userid} is the user the portal (or Proxmox itself) relies on; it stays enabled"]
    if errors:
        raise ValidationError(errors)
    changes = {k: v for k, v in {"groups": None if groups is None else sorted(groups), "enable": enable,
                                 "comment": comment, "email": email}.items() if v is not None}
    _write(actor=actor, cluster=cluster, action="pveaccess.user_update", target=f"user {userid}", request=request,
           detail={"userid": userid, **changes},
           call=lambda c: pve_access.user_update(c, userid, groups=None if groups is None else tuple(groups),
                                                 enable=enable, comment=comment, email=email))


def user_delete(*, actor, cluster: Cluster, userid: str, cfg=None, request=None) -> None:
    """Delete a Proxmox user (Proxmox drops its tokens and ACL entries with it). Refused for
    root@pam and for the user whose token the portal itself uses on this cluster."""
    _check(actor, request)
    if userid in (pve_access.ROOT, _portal_user(cluster)):
        why = "root@pam" if userid == pve_access.ROOT else "the user whose API token the portal uses on this cluster"
        raise ValidationError({"userid": [f"{userid} is {why}; the portal does not delete it"]})
    if _fresh(cluster, cfg).user(userid) is None:
        raise ValidationError({"userid": [f"no such user {userid}"]})
    _write(actor=actor, cluster=cluster, action="pveaccess.user_delete", target=f"user {userid}", request=request,
           detail={"userid": userid}, call=lambda c: pve_access.user_delete(c, userid))


def group_create(*, actor, cluster: Cluster, groupid: str, comment: str = "", cfg=None, request=None) -> None:
    _check(actor, request)
    if not pve_access.GROUPID_RE.match(groupid or ""):
        raise ValidationError({"groupid": ["letters, digits, '.', '-' and '_' only"]})
    if any(g.groupid == groupid for g in _fresh(cluster, cfg).groups):
        raise ValidationError({"groupid": [f"group {groupid} already exists"]})
    _write(actor=actor, cluster=cluster, action="pveaccess.group_create", target=f"group {groupid}", request=request,
           detail={"groupid": groupid}, call=lambda c: pve_access.group_create(c, groupid, comment=comment))


def group_delete(*, actor, cluster: Cluster, groupid: str, cfg=None, request=None) -> None:
    _check(actor, request)
    if not any(g.groupid == groupid for g in _fresh(cluster, cfg).groups):
        raise ValidationError({"groupid": [f"no such group {groupid}"]})
    _write(actor=actor, cluster=cluster, action="pveaccess.group_delete", target=f"group {groupid}", request=request,
           detail={"groupid": groupid}, call=lambda c: pve_access.group_delete(c, groupid))


def role_create(*, actor, cluster: Cluster, roleid: str, privs: tuple[str, ...], cfg=None, request=None) -> None:
    """A custom role from privileges on Proxmox's own list (those of its Administrator role)."""
    _check(actor, request)
    errors: dict[str, list[str]] = {}
    cfg = _fresh(cluster, cfg)
    if not pve_access.ROLEID_RE.match(roleid or ""):
        errors["roleid"] = ["letters, digits, '.', '-' and '_' only"]
    elif roleid.upper().startswith("PVE"):
        errors["roleid"] = ["role names starting with PVE are Proxmox's own"]
    elif any(r.roleid == roleid for r in cfg.roles):
        errors["roleid"] = [f"role {roleid} already exists"]
    unknown = sorted(set(privs) - set(cfg.privileges))
    if unknown:
        errors["privs"] = [f"not a Proxmox privilege: {', '.join(unknown)}"]
    elif not privs:
        errors["privs"] = ["choose at least one privilege"]
    if errors:
        raise ValidationError(errors)
    _write(actor=actor, cluster=cluster, action="pveaccess.role_create", target=f"role {roleid}", request=request,
           detail={"roleid": roleid, "privs": sorted(privs)},
           call=lambda c: pve_access.role_create(c, roleid, tuple(sorted(privs))))


def role_delete(*, actor, cluster: Cluster, roleid: str, cfg=None, request=None) -> None:
    _check(actor, request)
    role = next((r for r in _fresh(cluster, cfg).roles if r.roleid == roleid), None)
    if role is None:
        raise ValidationError({"roleid": [f"no such role {roleid}"]})
    if role.special:
        raise ValidationError({"roleid": [f"{roleid} is built into Proxmox and cannot be deleted"]})
    _write(actor=actor, cluster=cluster, action="pveaccess.role_delete", target=f"role {roleid}", request=request,
           detail={"roleid": roleid}, call=lambda c: pve_access.role_delete(c, roleid))


def token_create(*, actor, cluster: Cluster, userid: str, name: str, privsep: bool = True,
                 expire: dt.date | None = None, comment: str = "", cfg=None, request=None) -> pve_access.CreatedToken:
    """A Proxmox API token of `userid`. Its secret is in the answer only: shown once, never stored
    or audited."""
    _check(actor, request)
    errors: dict[str, list[str]] = {}
    user = _fresh(cluster, cfg).user(userid)
    if user is None:
        errors["userid"] = [f"no such user {userid}"]
    if not pve_access.TOKEN_NAME_RE.match(name or ""):
        errors["name"] = ["a letter, then letters, digits, '.', '-' or '_' (at least 2 characters)"]
    elif user is not None and any(t.name == name for t in user.tokens):
        errors["name"] = [f"{userid} already has a token {name}"]
    if expire is not None and expire <= dt.date.today():
        errors["expire"] = ["choose a day after today (or none: the user's expiry)"]
    if errors:
        raise ValidationError(errors)
    expire_at = int(dt.datetime.combine(expire, dt.time(), tzinfo=dt.UTC).timestamp()) if expire else None
    return _write(actor=actor, cluster=cluster, action="pveaccess.api_token_create", target=f"API token {userid}!{name}",
                  request=request, detail={"userid": userid, "name": name, "privsep": privsep, "expire": expire_at},
                  call=lambda c: pve_access.token_create(c, userid, name, privsep=privsep, expire=expire_at,
                                                         comment=comment))


def token_delete(*, actor, cluster: Cluster, userid: str, name: str, cfg=None, request=None) -> None:
    """Delete a Proxmox API token (refused for the one the portal uses on this cluster)."""
    _check(actor, request)
    if f"{userid}!{name}" == cluster.token_id:
        raise ValidationError({"name": ["this is the API token the portal uses on this cluster; it is not deleted here"]})
    user = _fresh(cluster, cfg).user(userid)
    if user is None or not any(t.name == name for t in user.tokens):
        raise ValidationError({"name": [f"{userid} has no token {name}"]})
    _write(actor=actor, cluster=cluster, action="pveaccess.api_token_delete", target=f"API token {userid}!{name}",
           request=request, detail={"userid": userid, "name": name},
           call=lambda c: pve_access.token_delete(c, userid, name))


def _acl_checked(cfg: pve_access.AccessConfig, *, path: str, roleid: str, type: str, ugid: str) -> str:
    """The normalized path, or ValidationError naming each bad field."""
    errors: dict[str, list[str]] = {}
    if pve_access.acl_path_error(path):
        errors["path"] = [pve_access.acl_path_error(path)]
    if not any(r.roleid == roleid for r in cfg.roles):
        errors["roleid"] = [f"no such role {roleid}"]
    if type not in pve_access.SUBJECT_TYPES:
        errors["type"] = [f"one of {', '.join(pve_access.SUBJECT_TYPES)}"]
    elif type == "user" and cfg.user(ugid) is None:
        errors["ugid"] = [f"no such user {ugid}"]
    elif type == "group" and not any(g.groupid == ugid for g in cfg.groups):
        errors["ugid"] = [f"no such group {ugid}"]
    elif type == "token" and cfg.token(ugid) is None:
        errors["ugid"] = [f"no such API token {ugid} (user@realm!name)"]
    if errors:
        raise ValidationError(errors)
    return pve_access.normalize_path(path)


def acl_add(*, actor, cluster: Cluster, path: str, roleid: str, type: str, ugid: str, propagate: bool = True,
            cfg=None, request=None) -> str:
    """Give `roleid` on `path` to a user, group or token; returns the normalized path."""
    _check(actor, request)
    path = _acl_checked(_fresh(cluster, cfg), path=path, roleid=roleid, type=type, ugid=ugid)
    _write(actor=actor, cluster=cluster, action="pveaccess.acl_add", target=f"ACL {path} {type} {ugid} {roleid}",
           request=request, detail={"path": path, "role": roleid, "type": type, "ugid": ugid, "propagate": propagate},
           call=lambda c: pve_access.acl_change(c, path=path, roles=(roleid,), type=type, ugid=ugid,
                                                propagate=propagate))
    return path


def acl_remove(*, actor, cluster: Cluster, path: str, roleid: str, type: str, ugid: str, cfg=None, request=None) -> None:
    """Remove one ACL entry (it must exist)."""
    _check(actor, request)
    cfg = _fresh(cluster, cfg)
    normal = pve_access.normalize_path(path)
    if not any((e.path, e.roleid, e.type, e.ugid) == (normal, roleid, type, ugid) for e in cfg.acl):
        raise ValidationError({"path": [f"there is no ACL entry giving {roleid} on {path} to {type} {ugid}"]})
    _write(actor=actor, cluster=cluster, action="pveaccess.acl_remove", target=f"ACL {normal} {type} {ugid} {roleid}",
           request=request, detail={"path": normal, "role": roleid, "type": type, "ugid": ugid},
           call=lambda c: pve_access.acl_change(c, path=normal, roles=(roleid,), type=type, ugid=ugid, delete=True))
