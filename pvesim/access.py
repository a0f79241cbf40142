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
    password: str | None = None
    groups: set[str] = field(default_factory=set)


@dataclass
class Token:
    userid: str
    tokenid: str  # the part after '!'
    secret: str
    privsep: bool = True
    expire: int = 0
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
        self.acl: list[Acl] = []
        self.tokens: dict[str, Token] = {}  # full id -> Token
        self.realms = {"pam": "Linux PAM standard authentication", "pve": "Proxmox VE authentication server"}
        self._key = secrets.token_bytes(32)

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
                  comment: str = "", expire: int = 0) -> Token:
        token = Token(userid, tokenid, secret or str(uuid.uuid4()), privsep, expire, comment)
        self.tokens[token.full] = token
        return token

    def check_token(self, full: str, secret: str) -> bool:
        token = self.tokens.get(full)
        if token is None or not self.user_active(token.userid):
            return False
        if token.expire and token.expire < time.time():
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

    # ---- privileges --------------------------------------------------------------------
    def _privs_for(self, subject: str, kind: str, path: str) -> set[str]:
        """Privileges of one user (with groups) or one token (alone) on path."""
        user_groups = self.users[subject].groups if kind == "user" and subject in self.users else set()
        chain = _path_chain(path)
        result: set[str] | None = None
        for i, p in enumerate(chain):
            leaf = i == len(chain) - 1
            entries = [a for a in self.acl if a.path == p and (a.propagate or leaf)]
            if kind == "user":
                direct = [a for a in entries if a.type == "user" and a.ugid == subject]
                group = [a for a in entries if a.type == "group" and a.ugid in user_groups]
                chosen = direct or group
            else:
                chosen = [a for a in entries if a.type == "token" and a.ugid == subject]
            if chosen:
                roles = {a.roleid for a in chosen}
                result = set() if "NoAccess" in roles else set().union(*(self.roles.get(r, set()) for r in roles))
        return result or set()

    def privileges(self, authid: str, path: str) -> set[str]:
        userid, _, tokenid = authid.partition("!")
        if userid == "root@pam":
            return set(ALL_PRIVS) if not tokenid or not self.tokens.get(authid, Token(userid, tokenid, "")).privsep \
                else self._privs_for(authid, "token", path) | self._pool_privs(authid, "token", path)
        privs = self._privs_for(userid, "user", path) | self._pool_privs(userid, "user", path)
        if tokenid:
            token = self.tokens.get(authid)
            if token is not None and token.privsep:
                privs &= self._privs_for(authid, "token", path) | self._pool_privs(authid, "token", path)
        return privs

    def _pool_privs(self, subject: str, kind: str, path: str) -> set[str]:
        """Roles on /pool/<p> apply to /vms/<id> and /storage/<id> of the pool's members."""
        parts = path.strip("/").split("/")
        if len(parts) != 2 or parts[0] not in ("vms", "storage"):
            return set()
        for poolid, pool in self.cluster.pools.items():
            members = pool["vms"] if parts[0] == "vms" else pool["storage"]
            key = int(parts[1]) if parts[0] == "vms" and parts[1].isdigit() else parts[1]
            if key in members:
                return self._privs_for(subject, kind, f"/pool/{poolid}")
        return set()

    def has(self, authid: str, path: str, priv: str) -> bool:
        return priv in self.privileges(authid, path)


def _path_chain(path: str) -> list[str]:
    parts = [p for p in path.strip("/").split("/") if p]
    return ["/"] + ["/" + "/".join(parts[: i + 1]) for i in range(len(parts))]
