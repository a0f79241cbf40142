"""/cluster/ha: resources, rules, legacy groups, status, disarm/arm (pve-semantics §4.3-4.5).

The engine lives in pvesim.ha (`cluster.ha`); these handlers translate between the API's
strings and its data, with pve-ha-manager's own error texts (including the cfs-lock wrappers
its config writes put around them).
"""

from __future__ import annotations

import re

from .. import params
from ..errors import ApiError
from ..ha import HAManager, config_digest
from ..params import P, FormatError
from ..router import api

_NODE_PRIO = re.compile(r"([a-zA-Z0-9]([a-zA-Z0-9\-]*[a-zA-Z0-9])?)(?::(\d+))?")
_RESOURCE_ID = re.compile(r"[a-z]+:\S+")


def _resource_or_vmid(value: str) -> None:
    if not (_RESOURCE_ID.fullmatch(value) or re.fullmatch(r"\d+", value)):
        raise FormatError("value does not look like a valid ha resource id")


def _resource_list(value: str) -> None:
    for sid in _split(value):
        if not _RESOURCE_ID.fullmatch(sid):
            raise FormatError("value does not look like a valid ha resource id")


def _node_list(value: str) -> None:
    for item in _split(value):
        if not _NODE_PRIO.fullmatch(item):
            raise FormatError("value does not look like a valid ha group node")


def _configid_list(value: str) -> None:
    for item in _split(value):
        params.FORMATS["pve-configid"](item)


# pve-ha-manager's formats, registered next to pve-common's so validation reports them the same way
params.FORMATS.setdefault("pve-ha-resource-or-vm-id", _resource_or_vmid)
params.FORMATS.setdefault("pve-ha-resource-id-list", _resource_list)
params.FORMATS.setdefault("pve-ha-node-list", _node_list)
params.FORMATS.setdefault("pve-configid-list", _configid_list)

SID = P.string(optional=False, format="pve-ha-resource-or-vm-id")
STATE = P.enum(["started", "stopped", "enabled", "disabled", "ignored"], default="started")
CONFIGID = P.string(optional=False, format="pve-configid")
DELETE = P.string(max_length=4096, format="pve-configid-list")


def _split(value: str) -> list[str]:
    return [v for v in re.split(r"[,;\s]+", value or "") if v]


def parse_nodes(value: str) -> dict[str, int]:
    out = {}
    for item in _split(value):
        name, _, prio = item.partition(":")
        out[name] = int(prio or 0)
    return out


def encode_nodes(nodes: dict[str, int]) -> str:
    return ",".join(f"{n}:{p}" if p else n for n, p in sorted(nodes.items()))


def install(cluster, scenario) -> None:
    """Load [ha] from the scenario and start the CRM/LRM loop."""
    ha = HAManager(cluster)
    data = (scenario or {}).get("ha", {})
    for g in data.get("groups", []):
        ha.groups[g["group"]] = {"nodes": parse_nodes(g["nodes"]), "restricted": int(g.get("restricted", 0)),
                                 "nofailback": int(g.get("nofailback", 0)), "comment": g.get("comment", "")}
    for r in data.get("resources", []):
        opts = {k: v for k, v in r.items() if k != "sid"}
        ha.add_resource(r["sid"], **opts)
    for order, r in enumerate(data.get("rules", []), start=1):
        ha.rules[r["rule"]] = _rule_from_params(r["type"], r, order)
    cluster.ha = ha
    cluster.background.append(ha)
    ha.start()


def _ha(ctx) -> HAManager:
    return ctx.cluster.ha


@api.get("/cluster/ha", params={})
def ha_index(ctx, p):
    ctx.check("/", "Sys.Audit")
    return [{"id": "status"}, {"id": "resources"}, {"id": "groups"}, {"id": "rules"}]


# ---- resources ---------------------------------------------------------------------------

def _resource_api(ha: HAManager, sid: str) -> dict:
    conf = ha.resources[sid]
    out = {"sid": sid, "digest": ha.resources_digest(), **conf}
    return out


@api.get("/cluster/ha/resources", params={"type": P.enum(["ct", "vm"])})
def resource_list(ctx, p):
    ctx.check("/", "Sys.Audit")
    ha = _ha(ctx)
    with ctx.cluster.lock:
        out = []
        for sid in sorted(ha.resources):
            item = _resource_api(ha, sid)
            if p.get("type") and item["type"] != p["type"]:
                continue
            if item.get("group") and item["group"] not in ha.groups:
                item["errors"] = {"group": f"group '{item['group']}' does not exist"}
            out.append(item)
        return out


@api.get("/cluster/ha/resources/{sid}", params={"sid": SID})
def resource_get(ctx, p):
    ctx.check("/", "Sys.Audit")
    ha = _ha(ctx)
    with ctx.cluster.lock:
        sid = ha.resolve_sid(p["sid"])
        if sid not in ha.resources:
            raise ApiError(500, f"no such resource '{sid}'")
        return _resource_api(ha, sid)


@api.post("/cluster/ha/resources", params={
    "sid": SID, "comment": P.string(max_length=4096), "failback": P.boolean(default=1),
    "group": P.string(format="pve-configid"), "max_relocate": P.integer(minimum=0, default=1),
    "max_restart": P.integer(minimum=0, default=1), "state": STATE, "type": P.enum(["ct", "vm"]),
})
def resource_create(ctx, p):
    ctx.check("/", "Sys.Console")
    sid = p.pop("sid")
    _ha(ctx).add_resource(sid, **p)
    return None


@api.put("/cluster/ha/resources/{sid}", params={
    "sid": SID, "comment": P.string(max_length=4096), "delete": DELETE, "digest": P.digest(),
    "failback": P.boolean(default=1), "group": P.string(format="pve-configid"),
    "max_relocate": P.integer(minimum=0, default=1), "max_restart": P.integer(minimum=0, default=1), "state": STATE,
})
def resource_update(ctx, p):
    ctx.check("/", "Sys.Console")
    sid = p.pop("sid")
    delete = _split(p.pop("delete", ""))
    digest = p.pop("digest", None)
    _ha(ctx).update_resource(sid, p, delete, digest)
    return None


@api.delete("/cluster/ha/resources/{sid}", params={"sid": SID, "purge": P.boolean(default=1)})
def resource_delete(ctx, p):
    ctx.check("/", "Sys.Console")
    ha = _ha(ctx)
    with ctx.cluster.lock:
        ha.remove_resource(p["sid"], purge=bool(p.get("purge", 1)))
    return None


def _motion(ctx, p, kind):
    ctx.check("/", "Sys.Console")
    return _ha(ctx).migrate(p["sid"], p["node"], kind)


@api.post("/cluster/ha/resources/{sid}/migrate", params={"sid": SID, "node": P.node()})
def resource_migrate(ctx, p):
    return _motion(ctx, p, "migrate")


@api.post("/cluster/ha/resources/{sid}/relocate", params={"sid": SID, "node": P.node()})
def resource_relocate(ctx, p):
    return _motion(ctx, p, "relocate")


# ---- rules -------------------------------------------------------------------------------

RULE_TYPES = ["node-affinity", "resource-affinity"]
RULE_PARAMS = {
    "rule": CONFIGID, "type": P.enum(RULE_TYPES, optional=False),
    "resources": P.string(optional=False, format="pve-ha-resource-id-list"),
    "nodes": P.string(format="pve-ha-node-list"), "strict": P.boolean(default=0),
    "affinity": P.enum(["positive", "negative"]), "disable": P.boolean(), "comment": P.string(max_length=4096),
}
TYPE_ONLY = {"nodes": "node-affinity", "strict": "node-affinity", "affinity": "resource-affinity"}
NOT_IN_SCHEMA = "property is not defined in schema and the schema does not allow additional properties"


def _check_rule_params(rtype: str, p: dict, create: bool) -> None:
    errors = {k: NOT_IN_SCHEMA for k, t in TYPE_ONLY.items() if k in p and t != rtype}
    if create:
        required = ["nodes"] if rtype == "node-affinity" else ["affinity"]
        errors.update({k: params.MISSING for k in required if k not in p})
    if errors:
        raise ApiError(400, "Parameter verification failed.", errors)


def _rule_from_params(rtype: str, p: dict, order: int) -> dict:
    rule = {"type": rtype, "resources": set(_split(p.get("resources", ""))), "order": order}
    if rtype == "node-affinity":
        rule["nodes"] = parse_nodes(p.get("nodes", ""))
        rule["strict"] = int(p.get("strict", 0))
    else:
        rule["affinity"] = p.get("affinity")
    for key in ("disable", "comment"):
        if p.get(key) not in (None, "", 0):
            rule[key] = p[key]
    return rule


def _rule_api(ha: HAManager, ruleid: str, errors: dict) -> dict:
    rule = ha.rules[ruleid]
    out = {"rule": ruleid, "type": rule["type"], "resources": ",".join(sorted(rule["resources"])),
           "digest": ha.rules_digest(), "order": rule.get("order", 0)}
    if rule["type"] == "node-affinity":
        out["nodes"] = encode_nodes(rule["nodes"])
        if rule.get("strict"):
            out["strict"] = 1
    else:
        out["affinity"] = rule["affinity"]
    for key in ("disable", "comment"):
        if rule.get(key):
            out[key] = rule[key]
    if ruleid in errors:
        out["errors"] = errors[ruleid]
    return out


def _assert_rule_refs(ha: HAManager, rule: dict, action: str) -> None:
    prefix = f"{action} failed: cfs-lock 'domain-ha' error: "
    unmanaged = sorted(s for s in rule["resources"] if s not in ha.resources)
    if unmanaged:
        raise ApiError(500, prefix + f"cannot use unmanaged resource(s) {', '.join(unmanaged)}.")
    missing = sorted(n for n in rule.get("nodes", {}) if n not in ha.cluster.nodes)
    if missing:
        raise ApiError(500, prefix + f"cannot use non-existant node(s) {', '.join(missing)}.")


def _assert_feasible(ha: HAManager, rules: dict, ruleid: str, action: str) -> None:
    errors = ha.rule_errors(rules).get(ruleid)
    if errors:
        lines = "".join(f"{opt}: {', '.join(msgs)}\n" for opt, msgs in errors.items())
        raise ApiError(500, f"{action} failed: 400 Rule '{ruleid}' is invalid.\n{lines}")


@api.get("/cluster/ha/rules", params={"type": P.enum(RULE_TYPES), "resource": P.string()})
def rule_list(ctx, p):
    ctx.check("/", "Sys.Audit")
    ha = _ha(ctx)
    with ctx.cluster.lock:
        errors = ha.rule_errors()
        out = []
        for ruleid in sorted(ha.rules, key=lambda r: (ha.rules[r].get("order", 0), r)):
            rule = ha.rules[ruleid]
            if p.get("type") and rule["type"] != p["type"]:
                continue
            if p.get("resource") and p["resource"] not in rule["resources"]:
                continue
            out.append(_rule_api(ha, ruleid, errors))
        return out


@api.get("/cluster/ha/rules/{rule}", params={"rule": CONFIGID})
def rule_get(ctx, p):
    ctx.check("/", "Sys.Audit")
    ha = _ha(ctx)
    with ctx.cluster.lock:
        if p["rule"] not in ha.rules:
            raise ApiError(500, f"no such ha rule '{p['rule']}'")
        return _rule_api(ha, p["rule"], ha.rule_errors())


@api.post("/cluster/ha/rules", params=dict(RULE_PARAMS))
def rule_create(ctx, p):
    ctx.check("/", "Sys.Console")
    ha = _ha(ctx)
    ruleid, rtype = p["rule"], p["type"]
    _check_rule_params(rtype, p, create=True)
    with ctx.cluster.lock:
        if ruleid in ha.rules:
            raise ApiError(500, f"create ha rule failed: cfs-lock 'domain-ha' error: HA rule '{ruleid}' already defined")
        order = max((r.get("order", 0) for r in ha.rules.values()), default=0) + 1
        rule = _rule_from_params(rtype, p, order)
        _assert_rule_refs(ha, rule, "create ha rule")
        _assert_feasible(ha, {**ha.rules, ruleid: rule}, ruleid, "create ha rule")
        ha.rules[ruleid] = rule
    return None


@api.put("/cluster/ha/rules/{rule}", params={
    **RULE_PARAMS, "resources": P.string(format="pve-ha-resource-id-list"), "delete": DELETE, "digest": P.digest(),
})
def rule_update(ctx, p):
    ctx.check("/", "Sys.Console")
    ha = _ha(ctx)
    ruleid = p["rule"]
    prefix = "update HA rules failed: cfs-lock 'domain-ha' error: "
    with ctx.cluster.lock:
        if p.get("digest") and p["digest"] != ha.rules_digest():
            raise ApiError(500, prefix + "detected modified configuration - file changed by other user? Try again.")
        old = ha.rules.get(ruleid)
        if old is None:
            raise ApiError(500, prefix + f"HA rule '{ruleid}' does not exist")
        if p["type"] != old["type"]:
            raise ApiError(500, prefix + f"rule type '{p['type']}' does not match the rule's type '{old['type']}'")
        _check_rule_params(old["type"], p, create=False)
        rule = {**old, "resources": set(old["resources"]), **({"nodes": dict(old["nodes"])} if "nodes" in old else {})}
        for key in _split(p.get("delete", "")):
            if key in ("resources", "nodes", "affinity", "type"):
                raise ApiError(500, prefix + f"unable to delete required option '{key}'")
            if key not in ("comment", "disable", "strict"):
                raise ApiError(500, prefix + f"no such option '{key}'")
            rule.pop(key, None)
        if "resources" in p:
            rule["resources"] = set(_split(p["resources"]))
        if "nodes" in p:
            rule["nodes"] = parse_nodes(p["nodes"])
        for key in ("strict", "affinity", "comment", "disable"):
            if key in p:
                rule[key] = p[key]
        if not rule.get("disable"):
            rule.pop("disable", None)
        _assert_rule_refs(ha, rule, "update HA rules")
        _assert_feasible(ha, {**ha.rules, ruleid: rule}, ruleid, "update HA rules")
        ha.rules[ruleid] = rule
    return None


@api.delete("/cluster/ha/rules/{rule}", params={"rule": CONFIGID})
def rule_delete(ctx, p):
    ctx.check("/", "Sys.Console")
    with ctx.cluster.lock:
        _ha(ctx).rules.pop(p["rule"], None)
    return None


# ---- legacy groups (PVE 8; migrated to rules by the CRM once every node runs 9.x) -------------

def _groups_or_fail(ha: HAManager, what: str) -> dict:
    if not ha.groups:
        raise ApiError(500, f"cannot {what}: ha groups have been migrated to rules")
    return ha.groups


def _group_api(group: str, g: dict, digest: str) -> dict:
    out = {"group": group, "type": "group", "nodes": encode_nodes(g["nodes"]), "digest": digest}
    for key in ("restricted", "nofailback"):
        if g.get(key):
            out[key] = 1
    if g.get("comment"):
        out["comment"] = g["comment"]
    return out


@api.get("/cluster/ha/groups", params={})
def group_list(ctx, p):
    ctx.check("/", "Sys.Audit")
    ha = _ha(ctx)
    with ctx.cluster.lock:
        groups = _groups_or_fail(ha, "index groups")
        digest = config_digest(groups)
        return [_group_api(g, groups[g], digest) for g in sorted(groups)]


@api.get("/cluster/ha/groups/{group}", params={"group": CONFIGID})
def group_get(ctx, p):
    ctx.check("/", "Sys.Audit")
    ha = _ha(ctx)
    with ctx.cluster.lock:
        groups = _groups_or_fail(ha, "read group")
        if p["group"] not in groups:
            raise ApiError(500, f"no such ha group '{p['group']}'")
        return _group_api(p["group"], groups[p["group"]], "")


@api.post("/cluster/ha/groups", params={
    "group": CONFIGID, "nodes": P.string(optional=False, format="pve-ha-node-list"),
    "comment": P.string(max_length=4096), "nofailback": P.boolean(default=0), "restricted": P.boolean(default=0),
    "type": P.enum(["group"]),
})
def group_create(ctx, p):
    ctx.check("/", "Sys.Console")
    ha = _ha(ctx)
    with ctx.cluster.lock:
        groups = _groups_or_fail(ha, "create group")
        if p["group"] in groups:
            raise ApiError(500, f"create ha group failed: cfs-lock 'domain-ha' error: ha group '{p['group']}' already defined")
        groups[p["group"]] = {"nodes": parse_nodes(p["nodes"]), "restricted": p.get("restricted", 0),
                              "nofailback": p.get("nofailback", 0), "comment": p.get("comment", "")}
    return None


@api.put("/cluster/ha/groups/{group}", params={
    "group": CONFIGID, "nodes": P.string(format="pve-ha-node-list"), "comment": P.string(max_length=4096),
    "nofailback": P.boolean(default=0), "restricted": P.boolean(default=0), "delete": DELETE, "digest": P.digest(),
})
def group_update(ctx, p):
    ctx.check("/", "Sys.Console")
    ha = _ha(ctx)
    with ctx.cluster.lock:
        groups = _groups_or_fail(ha, "update group")
        g = groups.get(p["group"])
        if g is None:
            raise ApiError(500, f"update ha group failed: cfs-lock 'domain-ha' error: no such ha group '{p['group']}'")
        for key in _split(p.get("delete", "")):
            g[key] = "" if key == "comment" else 0
        if "nodes" in p:
            g["nodes"] = parse_nodes(p["nodes"])
        for key in ("comment", "nofailback", "restricted"):
            if key in p:
                g[key] = p[key]
    return None


@api.delete("/cluster/ha/groups/{group}", params={"group": CONFIGID})
def group_delete(ctx, p):
    ctx.check("/", "Sys.Console")
    ha = _ha(ctx)
    with ctx.cluster.lock:
        groups = _groups_or_fail(ha, "delete group")
        users = sorted(s for s, conf in ha.resources.items() if conf.get("group") == p["group"])
        if users:
            raise ApiError(500, f"delete ha group failed: cfs-lock 'domain-ha' error: ha group is used by {', '.join(users)}")
        groups.pop(p["group"], None)
    return None


# ---- status --------------------------------------------------------------------------------

@api.get("/cluster/ha/status", params={})
def status_index(ctx, p):
    return [{"name": "current"}, {"name": "manager_status"}]


@api.get("/cluster/ha/status/current", params={})
def status_current(ctx, p):
    ctx.check("/", "Sys.Audit")
    with ctx.cluster.lock:
        return _ha(ctx).status_current(ctx.node)


@api.get("/cluster/ha/status/manager_status", params={})
def status_manager(ctx, p):
    ctx.check("/", "Sys.Audit")
    with ctx.cluster.lock:
        return _ha(ctx).manager_status(ctx.node)


@api.post("/cluster/ha/status/disarm-ha", params={"resource-mode": P.enum(["freeze", "ignore"], optional=False)})
def disarm(ctx, p):
    ctx.check("/", "Sys.Console")
    _ha(ctx).disarm_ha(p["resource-mode"])
    return None


@api.post("/cluster/ha/status/arm-ha", params={})
def arm(ctx, p):
    ctx.check("/", "Sys.Console")
    _ha(ctx).arm_ha()
    return None
