"""Which config file a URL addresses (cluster, node, guest) and who may read/write it; digests."""

from __future__ import annotations

import hashlib
import json
import re

from ...errors import ApiError
from ...params import P
from .schema import STALE


# ---- levels: which config file a URL addresses, and who may read/write it -----------------------

class Level:
    """One firewall config file: the cluster's, a node's, or a guest's (qemu or lxc)."""

    def __init__(self, kind: str):
        self.kind = kind
        if kind == "cluster":
            self.prefix, self.path_params, self.proxyto = "/cluster/firewall", {}, None
        elif kind == "node":
            self.prefix, self.path_params, self.proxyto = "/nodes/{node}/firewall", {"node": P.node()}, "node"
        else:
            self.prefix = f"/nodes/{{node}}/{kind}/{{vmid}}/firewall"
            self.path_params, self.proxyto = {"node": P.node(), "vmid": P.vmid()}, "node"

    def acl(self, p) -> tuple[str, str, str]:
        """(path, read privilege, write privilege) as the schema's permissions say."""
        if self.kind == "cluster":
            return "/", "Sys.Audit", "Sys.Modify"
        if self.kind == "node":
            return f"/nodes/{p['node']}", "Sys.Audit", "Sys.Modify"
        return f"/vms/{p['vmid']}", "VM.Audit", "VM.Config.Network"

    def audit(self, ctx, p) -> None:
        path, read, _ = self.acl(p)
        ctx.check(path, read)

    def modify(self, ctx, p) -> None:
        path, _, write = self.acl(p)
        ctx.check(path, write)

    def conf(self, cluster, p) -> dict:
        fw = cluster.firewall
        if self.kind == "cluster":
            return fw["cluster"]
        if self.kind == "node":
            cluster.node(p["node"])
            return fw["nodes"].setdefault(p["node"], {"options": {}, "rules": []})
        guest = cluster.guest(p["vmid"], self.kind, p["node"])  # 500 `Configuration file ... does not exist`
        return guest_conf(cluster, guest)


def guest_conf(cluster, guest) -> dict:
    """The guest's .fw content; a guest re-created under the same VMID starts empty."""
    conf = cluster.firewall["guests"].get(guest.vmid)
    if conf is None or conf["guest"] is not guest:
        conf = {"options": {}, "rules": [], "ipsets": {}, "aliases": {}, "guest": guest}
        cluster.firewall["guests"][guest.vmid] = conf
    return conf


LEVELS = [Level("cluster"), Level("node"), Level("qemu"), Level("lxc")]
GUEST_LEVELS = LEVELS[2:]


def digest_of(conf: dict) -> str:
    data = {k: v for k, v in conf.items() if k != "guest"}
    return hashlib.sha1(json.dumps(data, sort_keys=True, default=sorted).encode()).hexdigest()


def _assert_digest(conf: dict, p: dict) -> None:
    if p.get("digest") and p["digest"] != digest_of(conf):
        raise ApiError(500, STALE)


def _split(text: str | None) -> list[str]:
    return [x for x in re.split(r"[,;\s]+", text or "") if x]
