"""IP sets of the cluster and of guests: sets and their entries."""

from __future__ import annotations

import ipaddress
import re

from ...errors import ApiError, param_errors
from ...params import P
from ...router import api
from .levels import GUEST_LEVELS, Level, _assert_digest, digest_of
from .rules import _find_alias, _scoped
from .schema import DIGEST, NAME


# ---- IP sets ----------------------------------------------------------------------------------

IPSET_NAME = P.string(optional=False, **NAME)
CIDR = P.string(optional=False, format="IPorCIDRorAlias")


def _ipset_levels():
    """(prefix, path params, proxyto, conf getter, audit, modify) for the cluster and both guest types."""
    yield Level("cluster")
    yield from GUEST_LEVELS


def _check_cidr(cluster, conf: dict, cidr: str) -> None:
    try:
        ipaddress.ip_network(cidr, strict=False)
        return
    except ValueError:
        pass
    scope, name = _scoped(cidr)
    if not re.fullmatch(r"[A-Za-z][A-Za-z0-9\-_]+", name) or _find_alias(cluster, conf, scope, name) is None:
        param_errors({"cidr": f"no such alias '{cidr}'"})


def _register_ipsets(level: Level):
    base = f"{level.prefix}/ipset"
    pp = level.path_params

    def ipset(conf, name):
        found = conf["ipsets"].get(name)
        if found is None:
            raise ApiError(500, f"no such IPSet '{name}'")
        return found

    @api.get(base, params=dict(pp), proxyto=level.proxyto)
    def list_ipsets(ctx, p):
        level.audit(ctx, p)
        with ctx.cluster.lock:
            conf = level.conf(ctx.cluster, p)
            digest = digest_of(conf)
            return [{"name": n, "digest": digest, **({"comment": s["comment"]} if s.get("comment") else {})}
                    for n, s in sorted(conf["ipsets"].items())]

    @api.post(base, params={**pp, "name": IPSET_NAME, "comment": P.string(), "digest": DIGEST,
                            "rename": P.string(**NAME)}, proxyto=level.proxyto)
    def create_ipset(ctx, p):
        level.modify(ctx, p)
        with ctx.cluster.lock:
            conf = level.conf(ctx.cluster, p)
            _assert_digest(conf, p)
            name, old = p["name"], p.get("rename")
            if old:
                if old not in conf["ipsets"]:
                    param_errors({"name": f"IPSet '{old}' does not exist"})
                if name in conf["ipsets"] and name != old:
                    param_errors({"name": f"IPSet '{name}' does already exist"})
                entry = conf["ipsets"].pop(old)
                if "comment" in p:
                    entry["comment"] = p["comment"]
                conf["ipsets"][name] = entry
                return None
            if name in conf["ipsets"]:
                param_errors({"name": f"IPSet '{name}' already exists"})
            conf["ipsets"][name] = {"comment": p.get("comment", ""), "entries": []}
        return None

    @api.get(f"{base}/{{name}}", params={**pp, "name": IPSET_NAME}, proxyto=level.proxyto)
    def list_entries(ctx, p):
        level.audit(ctx, p)
        with ctx.cluster.lock:
            conf = level.conf(ctx.cluster, p)
            digest = digest_of(conf)
            return [{**e, "digest": digest} for e in ipset(conf, p["name"])["entries"]]

    @api.post(f"{base}/{{name}}", params={**pp, "name": IPSET_NAME, "cidr": CIDR, "comment": P.string(),
                                          "nomatch": P.boolean()}, proxyto=level.proxyto)
    def add_entry(ctx, p):
        level.modify(ctx, p)
        with ctx.cluster.lock:
            conf = level.conf(ctx.cluster, p)
            entries = ipset(conf, p["name"])["entries"]
            _check_cidr(ctx.cluster, conf, p["cidr"])
            if any(e["cidr"] == p["cidr"] for e in entries):
                param_errors({"cidr": f"address '{p['cidr']}' already exists"})
            entry = {"cidr": p["cidr"]}
            if p.get("comment"):
                entry["comment"] = p["comment"]
            if p.get("nomatch"):
                entry["nomatch"] = 1
            entries.append(entry)
        return None

    entry_params = {**pp, "name": IPSET_NAME, "cidr": CIDR}

    def find_entry(conf, p):
        for e in ipset(conf, p["name"])["entries"]:
            if e["cidr"] == p["cidr"]:
                return e
        raise ApiError(500, "no such IP/Network")

    @api.get(f"{base}/{{name}}/{{cidr}}", params=dict(entry_params), proxyto=level.proxyto, greedy="cidr")
    def read_entry(ctx, p):
        level.audit(ctx, p)
        with ctx.cluster.lock:
            conf = level.conf(ctx.cluster, p)
            return {**find_entry(conf, p), "digest": digest_of(conf)}

    @api.put(f"{base}/{{name}}/{{cidr}}", params={**entry_params, "comment": P.string(), "nomatch": P.boolean(),
                                                  "digest": DIGEST}, proxyto=level.proxyto, greedy="cidr")
    def update_entry(ctx, p):
        level.modify(ctx, p)
        with ctx.cluster.lock:
            conf = level.conf(ctx.cluster, p)
            _assert_digest(conf, p)
            entry = find_entry(conf, p)
            if "comment" in p:
                if p["comment"]:
                    entry["comment"] = p["comment"]
                else:
                    entry.pop("comment", None)
            if "nomatch" in p:
                if p["nomatch"]:
                    entry["nomatch"] = 1
                else:
                    entry.pop("nomatch", None)
        return None

    @api.delete(f"{base}/{{name}}/{{cidr}}", params={**entry_params, "digest": DIGEST}, proxyto=level.proxyto,
                greedy="cidr")
    def delete_entry(ctx, p):
        level.modify(ctx, p)
        with ctx.cluster.lock:
            conf = level.conf(ctx.cluster, p)
            _assert_digest(conf, p)
            entries = ipset(conf, p["name"])["entries"]
            entries[:] = [e for e in entries if e["cidr"] != p["cidr"]]
        return None

    @api.delete(f"{base}/{{name}}", params={**pp, "name": IPSET_NAME, "force": P.boolean()}, proxyto=level.proxyto)
    def delete_ipset(ctx, p):
        level.modify(ctx, p)
        with ctx.cluster.lock:
            conf = level.conf(ctx.cluster, p)
            found = conf["ipsets"].get(p["name"])
            if found is None:
                return None
            if found["entries"] and not p.get("force"):
                raise ApiError(500, f"IPSet '{p['name']}' is not empty")
            del conf["ipsets"][p["name"]]
        return None


for _level in _ipset_levels():
    _register_ipsets(_level)
