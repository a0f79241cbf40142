"""Security groups: /cluster/firewall/groups and the rules inside each group."""

from __future__ import annotations


from ...errors import ApiError, param_errors
from ...params import P
from ...router import api
from .levels import _assert_digest, digest_of
from .rules import _register_rules, _rule_out
from .schema import DIGEST, GROUP


# ---- security groups ----------------------------------------------------------------------

def _group_rules(cluster, p):
    conf = cluster.firewall["cluster"]
    group = conf["groups"].get(p["group"])
    if group is None:
        raise ApiError(500, f"no such security group '{p['group']}'")
    return group["rules"], conf


def _cluster_audit(ctx, p):
    ctx.check("/", "Sys.Audit")


def _cluster_modify(ctx, p):
    ctx.check("/", "Sys.Modify")


_register_rules("/cluster/firewall/groups/{group}", {"group": GROUP}, None, _group_rules, _cluster_audit,
                _cluster_modify, in_group=True, list_path="/cluster/firewall/groups/{group}")


@api.get("/cluster/firewall/groups/{group}", params={"group": GROUP})
def list_group_rules(ctx, p):
    ctx.check("/", "Sys.Audit")
    with ctx.cluster.lock:
        rules, conf = _group_rules(ctx.cluster, p)
        digest = digest_of(conf)
        return [_rule_out(r, i, digest) for i, r in enumerate(rules)]


@api.get("/cluster/firewall/groups", params={})
def list_groups(ctx, p):
    with ctx.cluster.lock:
        conf = ctx.cluster.firewall["cluster"]
        digest = digest_of(conf)
        return [{"group": name, "digest": digest, **({"comment": g["comment"]} if g.get("comment") else {})}
                for name, g in sorted(conf["groups"].items())]


@api.post("/cluster/firewall/groups", params={
    "group": GROUP, "comment": P.string(), "digest": DIGEST,
    "rename": P.string(min_length=2, max_length=18, pattern=r"[A-Za-z][A-Za-z0-9\-\_]+"),
})
def create_group(ctx, p):
    """Create a group, or rename `rename` to `group` (rules referencing it follow)."""
    ctx.check("/", "Sys.Modify")
    cluster = ctx.cluster
    with cluster.lock:
        conf = cluster.firewall["cluster"]
        _assert_digest(conf, p)
        name, old = p["group"], p.get("rename")
        if old:
            if old not in conf["groups"]:
                param_errors({"group": f"Security group '{old}' does not exist"})
            if name.lower() in (g.lower() for g in conf["groups"]) and name != old:
                param_errors({"group": f"Security group '{name}' does already exist"})
            group = conf["groups"].pop(old)
            if "comment" in p:
                group["comment"] = p["comment"]
            conf["groups"][name] = group
            for rule in _all_rules(cluster):
                if rule.get("type") == "group" and rule.get("action") == old:
                    rule["action"] = name
            return None
        for existing in conf["groups"]:
            if existing.lower() == name.lower():
                param_errors({"group": f"Security group '{existing}' already exists"})
        conf["groups"][name] = {"comment": p.get("comment", ""), "rules": []}
    return None


@api.delete("/cluster/firewall/groups/{group}", params={"group": GROUP})
def delete_group(ctx, p):
    ctx.check("/", "Sys.Modify")
    with ctx.cluster.lock:
        groups = ctx.cluster.firewall["cluster"]["groups"]
        group = groups.get(p["group"])
        if group is None:
            return None
        if group["rules"]:
            raise ApiError(500, f"Security group '{p['group']}' is not empty")
        if any(r.get("type") == "group" and r.get("action") == p["group"] for r in _all_rules(ctx.cluster)):
            raise ApiError(500, f"Security group '{p['group']}' is still in use")
        del groups[p["group"]]
    return None


def _all_rules(cluster):
    fw = cluster.firewall
    yield from fw["cluster"]["rules"]
    for node in fw["nodes"].values():
        yield from node["rules"]
    for vmid, conf in fw["guests"].items():
        if cluster.guests.get(vmid) is conf["guest"]:  # not a destroyed guest's leftovers
            yield from conf["rules"]
