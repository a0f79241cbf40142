"""Access control: users, groups, roles, ACLs, API tokens, tickets (pve-semantics §1.3, §6).

Effective privileges follow pve-access-control's rules: ACLs propagate down the path tree, a
deeper ACL replaces what is inherited, a user ACL replaces group ACLs on the same path, NoAccess
cancels everything, roles on /pool/<p> apply to the pool's members, root@pam bypasses all, and a
privilege-separated token gets the intersection of its user's and its own privileges.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
import time
import uuid
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .state import Cluster

TICKET_LIFETIME = 7200

VM_PRIVS = ["VM.Allocate", "VM.Audit", "VM.Backup", "VM.Clone", "VM.Config.CDROM", "VM.Config.CPU",
            "VM.Config.Cloudinit", "VM.Config.Disk", "VM.Config.HWType", "VM.Config.Memory",
            "VM.Config.Network", "VM.Config.Options", "VM.Console", "VM.GuestAgent.Audit",
            "VM.GuestAgent.FileRead", "VM.GuestAgent.FileSystemMgmt", "VM.GuestAgent.FileWrite",
            "VM.GuestAgent.Unrestricted", "VM.Migrate", "VM.PowerMgmt", "VM.Replicate", "VM.Snapshot",
            "VM.Snapshot.Rollback"]
OTHER_PRIVS = ["Datastore.Allocate", "Datastore.AllocateSpace", "Datastore.AllocateTemplate", "Datastore.Audit",
               "Group.Allocate", "Mapping.Audit", "Mapping.Modify", "Mapping.Use", "Permissions.Modify",
               "Pool.Allocate", "Pool.Audit", "Realm.Allocate", "Realm.AllocateUser", "SDN.Allocate", "SDN.Audit",
               "SDN.Use", "Sys.AccessNetwork", "Sys.Audit", "Sys.Console", "Sys.Incoming", "Sys.Modify",
               "Sys.PowerMgmt", "Sys.Syslog", "User.Modify"]
ALL_PRIVS = sorted(VM_PRIVS + OTHER_PRIVS)
_ROOT_PRIVS = {p: 1 for p in ALL_PRIVS}
_NOT_PVEADMIN = {"Sys.PowerMgmt", "Sys.Modify", "Sys.Incoming", "Sys.AccessNetwork", "Realm.Allocate",
                 "Permissions.Modify", "Mapping.Modify"}

BUILTIN_ROLES: dict[str, set[str]] = {
    "Administrator": set(ALL_PRIVS),
    "NoAccess": set(),
    "PVEAdmin": set(ALL_PRIVS) - _NOT_PVEADMIN,
    "PVEAuditor": {"Datastore.Audit", "Mapping.Audit", "Pool.Audit", "SDN.Audit", "Sys.Audit", "VM.Audit", "VM.GuestAgent.Audit"},
    "PVEVMAdmin": set(VM_PRIVS),
    "PVEVMUser": {"VM.Audit", "VM.Backup", "VM.Config.CDROM", "VM.Config.Cloudinit", "VM.Console", "VM.GuestAgent.Audit",
                  "VM.GuestAgent.FileRead", "VM.GuestAgent.FileSystemMgmt", "VM.GuestAgent.FileWrite", "VM.PowerMgmt"},
    "PVETemplateUser": {"VM.Audit", "VM.Clone"},
    "PVEDatastoreAdmin": {"Datastore.Allocate", "Datastore.AllocateSpace", "Datastore.AllocateTemplate", "Datastore.Audit"},
    "PVEDatastoreUser": {"Datastore.AllocateSpace", "Datastore.Audit"},
    "PVEPoolAdmin": {"Pool.Allocate", "Pool.Audit"},
    "PVEPoolUser": {"Pool.Audit"},
    "PVEMappingAdmin": {"Mapping.Audit", "Mapping.Modify", "Mapping.Use"},
    "PVEMappingUser": {"Mapping.Audit", "Mapping.Use"},
    "PVESDNAdmin": {"SDN.Allocate", "SDN.Audit", "SDN.Use"},
    "PVESDNUser": {"SDN.Audit", "SDN.Use"},
    "PVESysAdmin": {"Sys.Audit", "Sys.Console", "Sys.Syslog"},
    "PVEUserAdmin": {"User.Modify", "Group.Allocate", "Realm.AllocateUser"},
}


@dataclass
class User:
    userid: str
    enable: bool = True
    expire: int = 0
    email: str = ""
    firstname: str = ""
    lastname: str = ""
    comment: str = ""
    keys: str = ""
    password: str | None = None
    groups: set[str] = field(default_factory=set)


@dataclass
class Token:
    userid: str
    tokenid: str  # the part after '!'
    secret: str
    privsep: bool = True
    expire: int | None = None  # None: same as the user's
    comment: str = ""

    @property
    def full(self) -> str:
        return f"{self.userid}!{self.tokenid}"


@dataclass
class Acl:
    path: str
    ugid: str  # userid, groupid or full token id
    type: str  # user | group | token
    roleid: str
    propagate: bool = True


class AccessControl:
    def __init__(self, cluster: "Cluster"):
        self.cluster = cluster
        self.users: dict[str, User] = {"root@pam": User("root@pam", comment="Built-in superuser")}
        self.groups: dict[str, dict] = {}  # groupid -> {"comment": str}
        self.roles: dict[str, set[str]] = {k: set(v) for k, v in BUILTIN_ROLES.items()}
        self._acl: list[Acl] = []
        self.tokens: dict[str, Token] = {}  # full id -> Token
        self.realms = {"pam": "Linux PAM standard authentication", "pve": "Proxmox VE authentication server"}
        self._key = secrets.token_bytes(32)
        # roles_on() results, valid while the ACL list and group memberships are unchanged:
        # /cluster/resources asks for every guest, and the pool and parent paths repeat.
        self.generation = 0
        self._roles_cache: dict[tuple[str, str], dict[str, int]] = {}
        self._roles_stamp: tuple = ()

    @property
    def acl(self) -> list[Acl]:
        return self._acl

    @acl.setter
    def acl(self, entries: list[Acl]) -> None:
        self._acl = entries
        self.changed()

    def changed(self) -> None:
        """Call after changing group memberships in place (assigning `acl` calls it too)."""
        self.generation += 1

    # ---- credentials -------------------------------------------------------------------
    def set_password(self, userid: str, password: str) -> None:
        self.users.setdefault(userid, User(userid)).password = password

    def user_active(self, userid: str) -> bool:
        user = self.users.get(userid)
        return bool(user and user.enable and (user.expire == 0 or user.expire > time.time()))

    def login(self, username: str, password: str, realm: str | None = None) -> str | None:
        userid = username if "@" in username else f"{username}@{realm or 'pam'}"
        user = self.users.get(userid)
        if user is None or not self.user_active(userid):
            return None
        if user.password is not None and hmac.compare_digest(user.password, password):
            return userid
        ok = self.verify_ticket(password)  # ticket renewal: the old ticket as password
        return userid if ok == userid else None

    def add_token(self, userid: str, tokenid: str, secret: str | None = None, privsep: bool = True,
                  comment: str = "", expire: int | None = None) -> Token:
        token = Token(userid, tokenid, secret or str(uuid.uuid4()), privsep, expire, comment)
        self.tokens[token.full] = token
        return token

    def check_token(self, full: str, secret: str) -> bool:
        token = self.tokens.get(full)
        if token is None or not self.user_active(token.userid):
            return False
        expire = token.expire if token.expire is not None else self.users[token.userid].expire
        if expire and expire < time.time():
            return False
        return hmac.compare_digest(token.secret, secret)

    def _sign(self, text: str) -> str:
        return base64.b64encode(hmac.new(self._key, text.encode(), hashlib.sha256).digest()).decode()

    def make_ticket(self, userid: str) -> str:
        plain = f"PVE:{userid}:{int(time.time()):08X}"
        return f"{plain}::{self._sign(plain)}"

    def verify_ticket(self, ticket: str) -> str | None:
        try:
            plain, sig = ticket.split("::", 1)
            prefix, userid, stamp = plain.split(":")
        except ValueError:
            return None
        if prefix != "PVE" or not hmac.compare_digest(self._sign(plain), sig):
            return None
        if time.time() - int(stamp, 16) > TICKET_LIFETIME or not self.user_active(userid):
            return None
        return userid

    def make_csrf(self, userid: str) -> str:
        stamp = f"{int(time.time()):08X}"
        return f"{stamp}:{self._sign(stamp + ':' + userid)}"

    def verify_csrf(self, userid: str, token: str | None) -> bool:
        if not token or ":" not in token:
            return False
        stamp, sig = token.split(":", 1)
        try:
            fresh = time.time() - int(stamp, 16) <= TICKET_LIFETIME
        except ValueError:
            return False
        return fresh and hmac.compare_digest(self._sign(stamp + ":" + userid), sig)

    # ---- privileges (pve-access-control AccessControl::roles + RPCEnvironment::permissions) ----
    def roles_on(self, subject: str, path: str) -> dict[str, int]:
        """Roles of one user (directly or via groups) or one token (its own ACLs only) on path.

        Walks the path from `/` down: at each level the first matching kind (token, then user,
        then the user's groups) replaces what was inherited; non-propagating entries count only on
        the path itself. NoAccess in the result cancels every other role. Maps role -> propagate.
        """
        stamp = (self.generation, len(self._acl))  # appends change the length
        if stamp != self._roles_stamp or len(self._roles_cache) > 200_000:
            self._roles_cache = {}
            self._roles_stamp = stamp
        cached = self._roles_cache.get((subject, path))
        if cached is None:
            cached = self._roles_cache[(subject, path)] = self._compute_roles(subject, path)
        return dict(cached)

    def _compute_roles(self, subject: str, path: str) -> dict[str, int]:
        is_token = "!" in subject
        groups = set() if is_token else (self.users[subject].groups if subject in self.users else set())
        by_path = self._acl_by_path()
        chain = _path_chain(path)
        roles: dict[str, int] = {}
        for i, level in enumerate(chain):
            final = i == len(chain) - 1
            entries = [a for a in by_path.get(level, ()) if a.propagate or final]
            if not entries:
                continue
            if is_token:
                kinds = [[a for a in entries if a.type == "token" and a.ugid == subject]]
            else:
                kinds = [[a for a in entries if a.type == "user" and a.ugid == subject],
                         [a for a in entries if a.type == "group" and a.ugid in groups]]
            for chosen in kinds:
                if chosen:
                    roles = {}
                    for a in chosen:
                        roles[a.roleid] = max(roles.get(a.roleid, 0), int(a.propagate))
                    break
        if "NoAccess" in roles:
            return {"NoAccess": roles["NoAccess"]}
        return roles

    def _acl_by_path(self) -> dict[str, list[Acl]]:
        index: dict[str, list[Acl]] = {}
        for a in self.acl:
            index.setdefault(a.path, []).append(a)
        return index

    def _pool_roles(self, subject: str, path: str) -> dict[str, int]:
        """Roles on /pool/<p> that reach a member's /vms/<id> or /storage/<id> (never propagating)."""
        parts = path.strip("/").split("/")
        if len(parts) != 2 or parts[0] not in ("vms", "storage"):
            return {}
        key: object = parts[1]
        if parts[0] == "vms":
            if not parts[1].isdigit():
                return {}
            key = int(parts[1])
        kind = "vms" if parts[0] == "vms" else "storage"
        out: dict[str, int] = {}
        for poolid, pool in self.cluster.pools.items():
            if key in pool[kind]:
                for role in self.roles_on(subject, f"/pool/{poolid}"):
                    out[role] = 0
        return out

    def _own_privileges(self, subject: str, path: str) -> dict[str, int]:
        roles = self.roles_on(subject, path)
        pool = self._pool_roles(subject, path)
        if pool and "NoAccess" not in roles:
            if "NoAccess" in pool:  # a pool NoAccess wins over regular roles
                roles = {"NoAccess": 0}
            else:
                for role in pool:
                    roles.setdefault(role, 0)
        privs: dict[str, int] = {}
        for role, propagate in roles.items():
            for priv in self.roles.get(role, ()):
                privs[priv] = max(privs.get(priv, 0), propagate)
        return privs

    def privilege_map(self, authid: str, path: str) -> dict[str, int]:
        """Effective privileges of a user or token on path, mapped to their propagate flag."""
        path = normalize_path(path) or "/"
        userid, _, tokenid = authid.partition("!")
        if authid == "root@pam":
            return dict(_ROOT_PRIVS)
        if tokenid:
            token = self.tokens.get(authid)
            if token is None:
                return {}
            user_privs = self.privilege_map(userid, path)
            if not token.privsep:
                return user_privs
            own = self._own_privileges(authid, path)
            if userid == "root@pam":  # root's privsep tokens get exactly their own ACLs
                return own
            return {p: min(v, user_privs[p]) for p, v in own.items() if p in user_privs}
        if userid not in self.users:
            return {}
        return self._own_privileges(userid, path)

    def privileges(self, authid: str, path: str) -> set[str]:
        return set(self.privilege_map(authid, path))

    def has(self, authid: str, path: str, priv: str) -> bool:
        return priv in self.privilege_map(authid, path)

    def has_any(self, authid: str, path: str, privs) -> bool:
        have = self.privilege_map(authid, path)
        return any(p in have for p in privs)

    def effective_permissions(self, authid: str) -> dict[str, dict[str, int]]:
        """GET /access/permissions without path: top-level paths, ACL paths and pool members."""
        paths = {"/", "/access", "/access/groups", "/nodes", "/pool", "/sdn", "/storage", "/vms"}
        paths.update(a.path for a in self.acl)
        for pool in self.cluster.pools.values():
            paths.update(f"/vms/{v}" for v in pool.get("vms", ()))
            paths.update(f"/storage/{s}" for s in pool.get("storage", ()))
        out = {}
        for path in sorted(paths):
            privs = self.privilege_map(authid, path)
            if privs:
                out[path] = privs
        return out

    # ---- object removal keeps the config consistent (user.cfg drops dangling references) ----
    def remove_user(self, userid: str) -> None:
        self.users.pop(userid, None)
        for full in [t for t, tok in self.tokens.items() if tok.userid == userid]:
            self.remove_token(full)
        self.acl = [a for a in self.acl if not (a.type == "user" and a.ugid == userid)]

    def remove_token(self, full: str) -> None:
        self.tokens.pop(full, None)
        self.acl = [a for a in self.acl if not (a.type == "token" and a.ugid == full)]

    def remove_group(self, groupid: str) -> None:
        self.groups.pop(groupid, None)
        for user in self.users.values():
            user.groups.discard(groupid)
        self.changed()
        self.acl = [a for a in self.acl if not (a.type == "group" and a.ugid == groupid)]

    def group_members(self, groupid: str) -> list[str]:
        return sorted(u.userid for u in self.users.values() if groupid in u.groups)


def normalize_path(path: str | None) -> str | None:
    """PVE's normalize_path: collapse slashes, drop the trailing one; None for garbage."""
    if path is None:
        return None
    path = "/" + "/".join(p for p in path.split("/") if p)
    return path if _PATH_CHARS.fullmatch(path) else None


_PATH_CHARS = re.compile(r"[A-Za-z0-9._\-/]+")


_ACL_PATHS = [
    r"/", r"/access", r"/access/groups", r"/access/groups/[^/]+", r"/access/realm", r"/access/realm/[^/]+",
    r"/nodes", r"/nodes/[^/]+", r"/vms", r"/vms/[1-9][0-9]{2,8}", r"/storage", r"/storage/[^/]+",
    r"/pool", r"/pool/[^/]+", r"/pool/[^/]+/[^/]+", r"/pool/[^/]+/[^/]+/[^/]+",
    r"/sdn", r"/sdn/zones", r"/sdn/zones/[^/]+", r"/sdn/zones/[^/]+/[^/]+", r"/sdn/zones/[^/]+/[^/]+/[0-9]+",
    r"/sdn/(controllers|dns|fabrics|ipams)", r"/sdn/(controllers|dns|fabrics|ipams)/[^/]+",
    r"/mapping", r"/mapping/[^/]+", r"/mapping/[^/]+/[^/]+",
]
_ACL_PATH_RE = re.compile("^(" + "|".join(_ACL_PATHS) + ")$")


def check_path(path: str) -> bool:
    """Whether path is a valid ACL path (pve-semantics §6.3)."""
    return bool(_ACL_PATH_RE.match(path))


def _path_chain(path: str) -> list[str]:
    parts = [p for p in path.strip("/").split("/") if p]
    return ["/"] + ["/" + "/".join(parts[: i + 1]) for i in range(len(parts))]
