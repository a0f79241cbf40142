"""Proxmox access control: realms, users, groups, roles, ACL entries, pools, API tokens, and the
effective privileges of a user or token on an ACL path, computed by Proxmox's own rules.

Reads return frozen dataclasses in which every field the official schema marks optional has a
fallback: a missing `propagate` or `privsep` takes the schema's default (1), a role listed without
`privs` is read on its own, group members come from the group when the list leaves them out, and
a pool member's vmid or storage is read from its `id`.

The rules of `effective()` (pve-access-control's AccessControl::roles and RPCEnvironment::
permissions, pve-semantics §6.3), so that the portal can say why a privilege is there:
- the ACL path is walked from `/` down; at each level that has entries for the subject, those
  entries replace everything inherited. An entry that does not propagate counts only on its own
  path. A token's own entries, else the user's, else the user's groups' (user beats group);
- NoAccess among the resulting roles cancels every other role;
- roles on `/pool/<p>` reach `/vms/<id>` and `/storage/<id>` of the pool's members, never
  propagating and never over a direct NoAccess; a NoAccess on the pool beats the member's roles;
- root@pam has every privilege; a token without privilege separation has its user's privileges;
  a privilege-separated token has those both it and its user hold (propagating only if both do),
  except root@pam's tokens, which have exactly their own.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass, field

ROOT = "root@pam"
NO_ACCESS = "NoAccess"
ADMINISTRATOR = "Administrator"

# Formats of pve-common's JSONSchema and pve-access-control (pve-userid, pve-groupid, pve-roleid,
# pve-tokenid, pve-realm).
REALM_RE = re.compile(r"^[A-Za-z][A-Za-z0-9.\-_]+$")
USERID_RE = re.compile(r"^[^\s:/]+@[A-Za-z][A-Za-z0-9.\-_]+$")
USERID_MAX = 64
GROUPID_RE = re.compile(r"^[A-Za-z0-9.\-_]+$")
ROLEID_RE = re.compile(r"^[A-Za-z0-9.\-_]+$")
TOKEN_NAME_RE = re.compile(r"^[A-Za-z][A-Za-z0-9.\-_]+$")
SUBJECT_TYPES = ("user", "group", "token")

# ACL paths Proxmox accepts (AccessControl::check_path, pve-semantics §6.3).
_ACL_PATHS = [
    r"/", r"/access", r"/access/groups", r"/access/groups/[^/]+", r"/access/realm", r"/access/realm/[^/]+",
    r"/nodes", r"/nodes/[^/]+", r"/vms", r"/vms/[1-9][0-9]{2,8}", r"/storage", r"/storage/[^/]+",
    r"/pool", r"/pool/[^/]+", r"/pool/[^/]+/[^/]+", r"/pool/[^/]+/[^/]+/[^/]+",
    r"/sdn", r"/sdn/zones", r"/sdn/zones/[^/]+", r"/sdn/zones/[^/]+/[^/]+", r"/sdn/zones/[^/]+/[^/]+/[0-9]+",
    r"/sdn/(?:controllers|dns|fabrics|ipams)", r"/sdn/(?:controllers|dns|fabrics|ipams)/[^/]+",
    r"/mapping", r"/mapping/[^/]+", r"/mapping/[^/]+/[^/]+",
]
_ACL_PATH_RE = re.compile("^(?:" + "|".join(_ACL_PATHS) + ")$")
_PATH_CHARS = re.compile(r"^[A-Za-z0-9._\-/]+$")
# Paths GET /access/permissions lists without a path, beside the ACL and pool-member paths.
_TOP_PATHS = ("/", "/access", "/access/groups", "/nodes", "/pool", "/sdn", "/storage", "/vms")


def normalize_path(path: str) -> str | None:
    """Proxmox's normalize_path: one leading slash, no doubled or trailing ones; None for text
    with characters an ACL path cannot hold."""
    path = "/" + "/".join(p for p in (path or "").strip().split("/") if p)
    return path if _PATH_CHARS.match(path) else None


def acl_path_error(path: str) -> str | None:
    """Why `path` is not an ACL path Proxmox accepts (None when it is)."""
    normal = normalize_path(path)
    if not (path or "").strip():
        return "enter an ACL path, e.g. / or /vms/100 or /pool/acme"
    if normal is None or not _ACL_PATH_RE.match(normal):
        return (f"invalid ACL path '{path}': use /, /access[/groups/<group>|/realm/<realm>], /nodes[/<node>], "
                "/vms[/<vmid>], /storage[/<storage>], /pool[/<pool>], /sdn/..., /mapping[/<type>[/<id>]]")
    return None


def userid_error(userid: str) -> str | None:
    """Why `userid` is not a Proxmox user id `name@realm` (None when it is)."""
    if not USERID_RE.match(userid or ""):
        return f"'{userid}' is not a user id of the form name@realm (e.g. alice@pve)"
    if len(userid) > USERID_MAX:
        return f"a user id has at most {USERID_MAX} characters"
    return None


def split_tokenid(authid: str) -> tuple[str, str | None]:
    """`user@realm!name` -> (`user@realm`, `name`); a user id -> (it, None)."""
    userid, sep, name = authid.partition("!")
    return userid, (name if sep else None)


# --- typed results ------------------------------------------------------------------------------


def _epoch(value: int | None) -> dt.datetime | None:
    """Proxmox's expiry (seconds since the epoch, 0 = never) as a datetime (None = never)."""
    return dt.datetime.fromtimestamp(value, tz=dt.UTC) if value else None


@dataclass(frozen=True)
class Realm:
    realm: str
    type: str
    comment: str = ""
    tfa: str = ""


@dataclass(frozen=True)
class ProxmoxToken:
    """A Proxmox API token (its secret is never readable)."""

    userid: str
    name: str
    privsep: bool = True
    expire: int | None = None  # None: the user's
    comment: str = ""

    @property
    def authid(self) -> str:
        return f"{self.userid}!{self.name}"

    @property
    def expires_at(self) -> dt.datetime | None:
        return _epoch(self.expire)


@dataclass(frozen=True)
class AccessUser:
    userid: str
    enable: bool = True
    expire: int = 0
    firstname: str = ""
    lastname: str = ""
    email: str = ""
    comment: str = ""
    realm_type: str = ""
    groups: tuple[str, ...] = ()
    tokens: tuple[ProxmoxToken, ...] = ()

    @property
    def realm(self) -> str:
        return self.userid.rsplit("@", 1)[-1]

    @property
    def expires_at(self) -> dt.datetime | None:
        return _epoch(self.expire)


@dataclass(frozen=True)
class AccessGroup:
    groupid: str
    comment: str = ""
    members: tuple[str, ...] = ()


@dataclass(frozen=True)
class Role:
    roleid: str
    privs: frozenset[str] = frozenset()
    special: bool = False  # built in: cannot be changed or deleted

    @property
    def sorted_privs(self) -> list[str]:
        return sorted(self.privs)


@dataclass(frozen=True)
class AclEntry:
    path: str
    type: str  # user | group | token
    ugid: str
    roleid: str
    propagate: bool = True


@dataclass(frozen=True)
class Pool:
    poolid: str
    comment: str = ""
    vms: tuple[int, ...] = ()
    storage: tuple[str, ...] = ()


@dataclass(frozen=True)
class CreatedToken:
    """POST .../token answer: `value` is the secret, shown by Proxmox this once."""

    token: ProxmoxToken
    value: str


@dataclass(frozen=True)
class AccessConfig:
    """Everything the effective privileges depend on, read in one go."""

    users: tuple[AccessUser, ...]
    groups: tuple[AccessGroup, ...]
    roles: tuple[Role, ...]
    acl: tuple[AclEntry, ...]
    pools: tuple[Pool, ...]
    _memberships: dict = field(default_factory=dict, compare=False, repr=False)

    def user(self, userid: str) -> AccessUser | None:
        return next((u for u in self.users if u.userid == userid), None)

    def token(self, authid: str) -> ProxmoxToken | None:
        userid, _ = split_tokenid(authid)
        user = self.user(userid)
        return next((t for t in user.tokens if t.authid == authid), None) if user else None

    def groups_of(self, userid: str) -> frozenset[str]:
        if not self._memberships:
            members: dict[str, set[str]] = {}
            for group in self.groups:
                for member in group.members:
                    members.setdefault(member, set()).add(group.groupid)
            for user in self.users:
                members.setdefault(user.userid, set()).update(user.groups)
            self._memberships.update({k: frozenset(v) for k, v in members.items()})
        return self._memberships.get(userid, frozenset())

    def role_privs(self, roleid: str) -> frozenset[str]:
        return next((r.privs for r in self.roles if r.roleid == roleid), frozenset())

    @property
    def privileges(self) -> list[str]:
        """Proxmox's list of privileges: those of its built-in Administrator role."""
        return sorted(self.role_privs(ADMINISTRATOR))


# --- reads --------------------------------------------------------------------------------------


def _flag(value, default: bool = True) -> bool:
    return default if value is None or value == "" else bool(int(value))


def _csv(value) -> tuple[str, ...]:
    if isinstance(value, (list, tuple)):
        return tuple(str(v) for v in value if v)
    return tuple(v for v in re.split(r"[,;\s]+", value or "") if v)


def _token(userid: str, item: dict, name: str | None = None) -> ProxmoxToken:
    expire = item.get("expire")
    return ProxmoxToken(userid=userid, name=name or item["tokenid"], privsep=_flag(item.get("privsep")),
                        expire=None if expire is None else int(expire), comment=item.get("comment") or "")


def realms(client) -> list[Realm]:
    return [Realm(realm=i["realm"], type=i.get("type") or "", comment=i.get("comment") or "", tfa=i.get("tfa") or "")
            for i in client.get("access/domains") or [] if isinstance(i, dict) and i.get("realm")]


def tokens(client, userid: str) -> list[ProxmoxToken]:
    return [_token(userid, i) for i in client.get(f"access/users/{userid}/token") or [] if i.get("tokenid")]


def users(client) -> list[AccessUser]:
    """Every user with groups and tokens (full=1; tokens read per user when the list leaves them out)."""
    out = []
    for item in client.get("access/users", full=1) or []:
        userid = item.get("userid")
        if not userid:
            continue
        listed = item.get("tokens")
        user_tokens = [_token(userid, t) for t in listed if t.get("tokenid")] if isinstance(listed, list) \
            else tokens(client, userid)
        out.append(AccessUser(
            userid=userid, enable=_flag(item.get("enable")), expire=int(item.get("expire") or 0),
            firstname=item.get("firstname") or "", lastname=item.get("lastname") or "",
            email=item.get("email") or "", comment=item.get("comment") or "",
            realm_type=item.get("realm-type") or "", groups=_csv(item.get("groups")),
            tokens=tuple(sorted(user_tokens, key=lambda t: t.name)),
        ))
    return sorted(out, key=lambda u: u.userid)


def groups(client) -> list[AccessGroup]:
    out = []
    for item in client.get("access/groups") or []:
        groupid = item.get("groupid")
        if not groupid:
            continue
        if "users" in item:
            members = _csv(item.get("users"))
        else:  # optional in the list; the group itself always names its members
            members = _csv((client.get(f"access/groups/{groupid}") or {}).get("members"))
        out.append(AccessGroup(groupid=groupid, comment=item.get("comment") or "", members=tuple(sorted(members))))
    return sorted(out, key=lambda g: g.groupid)


def roles(client) -> list[Role]:
    out = []
    for item in client.get("access/roles") or []:
        roleid = item.get("roleid")
        if not roleid:
            continue
        if "privs" in item:
            privs = frozenset(_csv(item.get("privs")))
        else:  # optional in the list: the role's own answer maps each privilege to 1
            privs = frozenset(k for k, v in (client.get(f"access/roles/{roleid}") or {}).items() if v)
        out.append(Role(roleid=roleid, privs=privs, special=_flag(item.get("special"), default=False)))
    return sorted(out, key=lambda r: r.roleid)


def acl(client) -> list[AclEntry]:
    out = []
    for item in client.get("access/acl") or []:
        if not all(item.get(k) for k in ("path", "type", "ugid", "roleid")):
            continue
        out.append(AclEntry(path=item["path"], type=item["type"], ugid=item["ugid"], roleid=item["roleid"],
                            propagate=_flag(item.get("propagate"))))
    return sorted(out, key=lambda a: (a.path, a.type, a.ugid, a.roleid))


def pools(client) -> list[Pool]:
    """Pools with their guests and storages (one call for the list, one per pool for its members)."""
    out = []
    for item in client.get("pools") or []:
        poolid = item.get("poolid")
        if not poolid:
            continue
        detail = next(iter(client.get("pools", poolid=poolid) or []), {}) or {}
        if "members" not in detail:  # optional here; the older per-pool read promises it
            detail = client.get(f"pools/{poolid}") or {}
        vms, stores = [], []
        for member in detail.get("members") or []:
            kind, _, rest = str(member.get("id") or "").partition("/")
            kind = member.get("type") or kind
            if kind in ("qemu", "lxc", "openvz"):
                vmid = member.get("vmid") or (rest if rest.isdigit() else None)
                if vmid is not None:
                    vms.append(int(vmid))
            elif kind == "storage":
                storage = member.get("storage") or rest.rpartition("/")[2]
                if storage:
                    stores.append(storage)
        out.append(Pool(poolid=poolid, comment=item.get("comment") or detail.get("comment") or "",
                        vms=tuple(sorted(set(vms))), storage=tuple(sorted(set(stores)))))
    return sorted(out, key=lambda p: p.poolid)


def config(client, *, with_pools: bool = True) -> AccessConfig:
    """Users (with groups and tokens), groups, roles, ACL and pools: what effective() needs.
    Without pools (one call per pool) when only the rest is wanted."""
    return AccessConfig(users=tuple(users(client)), groups=tuple(groups(client)), roles=tuple(roles(client)),
                        acl=tuple(acl(client)), pools=tuple(pools(client)) if with_pools else ())


def permissions(client, authid: str | None = None, path: str | None = None) -> dict[str, dict[str, bool]]:
    """Proxmox's own answer (GET /access/permissions): path -> privilege -> propagates."""
    answer = client.get("access/permissions", userid=authid, path=path) or {}
    return {p: {priv: bool(int(v)) for priv, v in (privs or {}).items()} for p, privs in answer.items()}


# --- writes (each raises the client's typed ProxmoxError with Proxmox's message) ----------------


def user_create(client, userid: str, *, password: str | None = None, groups: tuple[str, ...] = (),
                comment: str = "", email: str = "", firstname: str = "", lastname: str = "",
                enable: bool = True, expire: int = 0) -> None:
    client.post("access/users", userid=userid, password=password or None, groups=",".join(groups) or None,
                comment=comment or None, email=email or None, firstname=firstname or None,
                lastname=lastname or None, enable=enable, expire=expire or None)


def user_update(client, userid: str, *, groups: tuple[str, ...] | None = None, enable: bool | None = None,
                comment: str | None = None, email: str | None = None) -> None:
    """Change what is given (None: unchanged); `groups` replaces the user's groups (() leaves none)."""
    client.put(f"access/users/{userid}", groups=None if groups is None else ",".join(groups), enable=enable,
               comment=comment, email=email)


def user_delete(client, userid: str) -> None:
    client.delete(f"access/users/{userid}")


def group_create(client, groupid: str, *, comment: str = "") -> None:
    client.post("access/groups", groupid=groupid, comment=comment or None)


def group_delete(client, groupid: str) -> None:
    client.delete(f"access/groups/{groupid}")


def role_create(client, roleid: str, privs: tuple[str, ...]) -> None:
    client.post("access/roles", roleid=roleid, privs=",".join(privs) or None)


def role_delete(client, roleid: str) -> None:
    client.delete(f"access/roles/{roleid}")


def token_create(client, userid: str, name: str, *, privsep: bool = True, expire: int | None = None,
                 comment: str = "") -> CreatedToken:
    answer = client.post(f"access/users/{userid}/token/{name}", privsep=privsep, expire=expire,
                         comment=comment or None) or {}
    info = answer.get("info") or {}
    return CreatedToken(token=_token(userid, info, name=name), value=answer.get("value") or "")


def token_delete(client, userid: str, name: str) -> None:
    client.delete(f"access/users/{userid}/token/{name}")


def acl_change(client, *, path: str, roles: tuple[str, ...], type: str, ugid: str, propagate: bool = True,
               delete: bool = False) -> None:
    """Grant (or with delete=True remove) `roles` on `path` to one user, group or token."""
    if type not in SUBJECT_TYPES:
        raise ValueError(f"type: one of {', '.join(SUBJECT_TYPES)}, not {type!r}")
    client.put("access/acl", path=path, roles=",".join(roles), **{f"{type}s": ugid},
               propagate=None if delete else propagate, delete=True if delete else None)


# --- effective privileges -----------------------------------------------------------------------


@dataclass(frozen=True)
class Grant:
    """One ACL entry (or a pool's) that gives a role to the subject on the path asked about."""

    role: str
    path: str  # where the entry sits
    type: str  # user | group | token
    ugid: str
    propagate: bool
    pool: str = ""  # set when the role reaches the path as a member of this pool


@dataclass(frozen=True)
class Effective:
    """Privileges of `authid` on `path` -> whether they propagate, with how they came about."""

    authid: str
    path: str
    privileges: dict[str, bool]
    roles: dict[str, bool]
    grants: tuple[Grant, ...] = ()
    reason: str = ""
    user: Effective | None = None  # a privilege-separated token: its user's side
    own: Effective | None = None  # ... and its own, before the intersection


def _path_chain(path: str) -> list[str]:
    parts = [p for p in path.split("/") if p]
    return ["/"] + ["/" + "/".join(parts[: i + 1]) for i in range(len(parts))]


def _roles_on(cfg: AccessConfig, subject: str, path: str) -> tuple[dict[str, bool], list[Grant]]:
    is_token = split_tokenid(subject)[1] is not None
    member_of = frozenset() if is_token else cfg.groups_of(subject)
    by_path: dict[str, list[AclEntry]] = {}
    for entry in cfg.acl:
        by_path.setdefault(entry.path, []).append(entry)
    roles: dict[str, bool] = {}
    grants: list[Grant] = []
    for level in _path_chain(path):
        final = level == path
        entries = [e for e in by_path.get(level, ()) if e.propagate or final]
        if is_token:
            kinds = [[e for e in entries if e.type == "token" and e.ugid == subject]]
        else:
            kinds = [[e for e in entries if e.type == "user" and e.ugid == subject],
                     [e for e in entries if e.type == "group" and e.ugid in member_of]]
        chosen = next((k for k in kinds if k), None)
        if chosen is None:
            continue
        roles, grants = {}, []  # a deeper level replaces what was inherited
        for e in chosen:
            roles[e.roleid] = roles.get(e.roleid, False) or e.propagate
            grants.append(Grant(role=e.roleid, path=e.path, type=e.type, ugid=e.ugid, propagate=e.propagate))
    if NO_ACCESS in roles:
        return {NO_ACCESS: roles[NO_ACCESS]}, [g for g in grants if g.role == NO_ACCESS]
    return roles, grants


def _pool_roles(cfg: AccessConfig, subject: str, path: str) -> tuple[dict[str, bool], list[Grant]]:
    kind, _, ident = path.strip("/").partition("/")
    if kind not in ("vms", "storage") or not ident or "/" in ident:
        return {}, []
    roles: dict[str, bool] = {}
    grants: list[Grant] = []
    for pool in cfg.pools:
        members = [str(v) for v in pool.vms] if kind == "vms" else list(pool.storage)
        if ident not in members:
            continue
        pool_roles, pool_grants = _roles_on(cfg, subject, f"/pool/{pool.poolid}")
        for role in pool_roles:
            roles[role] = False  # never propagating
        grants += [Grant(role=g.role, path=g.path, type=g.type, ugid=g.ugid, propagate=False, pool=pool.poolid)
                   for g in pool_grants]
    return roles, grants


def _own(cfg: AccessConfig, subject: str, path: str) -> Effective:
    roles, grants = _roles_on(cfg, subject, path)
    pool_roles, pool_grants = _pool_roles(cfg, subject, path)
    if pool_roles and NO_ACCESS not in roles:
        if NO_ACCESS in pool_roles:  # a pool's NoAccess beats the path's own roles
            roles, grants = {NO_ACCESS: False}, [g for g in pool_grants if g.role == NO_ACCESS]
        else:
            for role in pool_roles:
                roles.setdefault(role, False)
            grants += [g for g in pool_grants if g.role in roles]
    privileges: dict[str, bool] = {}
    for role, propagate in roles.items():
        for priv in cfg.role_privs(role):
            privileges[priv] = privileges.get(priv, False) or propagate
    return Effective(authid=subject, path=path, privileges=privileges, roles=roles, grants=tuple(grants))


def effective(cfg: AccessConfig, authid: str, path: str) -> Effective:
    """The privileges `authid` (a user id or `user@realm!token`) holds on ACL path `path`."""
    path = normalize_path(path) or "/"
    userid, name = split_tokenid(authid)
    if authid == ROOT:
        return Effective(authid, path, {p: True for p in cfg.privileges}, {ADMINISTRATOR: True},
                         reason="root@pam has every privilege, whatever the ACL")
    if name is None:
        result = _own(cfg, authid, path)
        if not result.grants:
            return Effective(authid, path, {}, {}, reason="no ACL entry for this user or its groups reaches this path")
        return result
    token = cfg.token(authid)
    if token is None:
        return Effective(authid, path, {}, {}, reason=f"there is no token {authid}")
    user_side = effective(cfg, userid, path)
    if not token.privsep:
        return Effective(authid, path, user_side.privileges, user_side.roles, user_side.grants,
                         reason=f"without privilege separation a token has its user's privileges ({userid})",
                         user=user_side)
    own = _own(cfg, authid, path)
    if userid == ROOT:
        return Effective(authid, path, own.privileges, own.roles, own.grants, own=own,
                         reason="a privilege-separated token of root@pam has exactly its own ACL entries")
    privileges = {p: v and user_side.privileges[p] for p, v in own.privileges.items() if p in user_side.privileges}
    return Effective(authid, path, privileges, own.roles, own.grants, user=user_side, own=own,
                     reason=f"privilege-separated: only what both the token's own ACL entries and its user "
                            f"({userid}) grant")


def effective_all(cfg: AccessConfig, authid: str) -> dict[str, dict[str, bool]]:
    """Like GET /access/permissions without a path: every top path, ACL path and pool member's
    path on which `authid` holds anything."""
    paths = set(_TOP_PATHS) | {e.path for e in cfg.acl}
    for pool in cfg.pools:
        paths |= {f"/vms/{v}" for v in pool.vms} | {f"/storage/{s}" for s in pool.storage}
    out = {}
    for path in sorted(paths):
        privs = effective(cfg, authid, path).privileges
        if privs:
            out[path] = privs
    return out
