"""Aliases of the cluster and of guests."""

from __future__ import annotations


from ...errors import ApiError, param_errors
from ...params import P
from ...router import api
from .ipsets import _ipset_levels
from .levels import Level, _assert_digest, digest_of
from .schema import DIGEST, NAME


# ---- aliases ----------------------------------------------------------------------------------

def _register_aliases(level: Level):
    base = f"{level.prefix}/aliases"
    pp = level.path_params
    alias_name = P.string(optional=False, **NAME)

    def find(conf, name):
        found = conf["aliases"].get(name.lower())
        if found is None:
            raise ApiError(500, f"no such alias '{name}'")
        return found

    @api.get(base, params=dict(pp), proxyto=level.proxyto)
    def list_aliases(ctx, p):
        level.audit(ctx, p)
        with ctx.cluster.lock:
            conf = level.conf(ctx.cluster, p)
            digest = digest_of(conf)
            return [{**a, "digest": digest} for _, a in sorted(conf["aliases"].items())]

    @api.post(base, params={**pp, "name": alias_name, "cidr": P.string(optional=False, format="IPorCIDR"),
                            "comment": P.string()}, proxyto=level.proxyto)
    def create_alias(ctx, p):
        level.modify(ctx, p)
        with ctx.cluster.lock:
            conf = level.conf(ctx.cluster, p)
            if p["name"].lower() in conf["aliases"]:
                param_errors({"name": f"alias '{p['name']}' already exists"})
            conf["aliases"][p["name"].lower()] = _alias(p["name"], p["cidr"], p.get("comment"))
        return None

    @api.get(f"{base}/{{name}}", params={**pp, "name": alias_name}, proxyto=level.proxyto)
    def read_alias(ctx, p):
        level.audit(ctx, p)
        with ctx.cluster.lock:
            conf = level.conf(ctx.cluster, p)
            return {**find(conf, p["name"]), "digest": digest_of(conf)}

    @api.put(f"{base}/{{name}}", params={**pp, "name": alias_name, "cidr": P.string(optional=False, format="IPorCIDR"),
                                         "comment": P.string(), "digest": DIGEST, "rename": P.string(**NAME)},
             proxyto=level.proxyto)
    def update_alias(ctx, p):
        level.modify(ctx, p)
        with ctx.cluster.lock:
            conf = level.conf(ctx.cluster, p)
            _assert_digest(conf, p)
            old = find(conf, p["name"])
            new_name = p.get("rename") or old["name"]
            if new_name.lower() != p["name"].lower() and new_name.lower() in conf["aliases"]:
                param_errors({"rename": f"alias '{new_name}' already exists"})
            del conf["aliases"][p["name"].lower()]
            comment = p["comment"] if "comment" in p else old.get("comment")
            conf["aliases"][new_name.lower()] = _alias(new_name, p["cidr"], comment)
        return None

    @api.delete(f"{base}/{{name}}", params={**pp, "name": alias_name, "digest": DIGEST}, proxyto=level.proxyto)
    def delete_alias(ctx, p):
        level.modify(ctx, p)
        with ctx.cluster.lock:
            conf = level.conf(ctx.cluster, p)
            _assert_digest(conf, p)
            conf["aliases"].pop(p["name"].lower(), None)
        return None


def _alias(name: str, cidr: str, comment: str | None) -> dict:
    out = {"name": name, "cidr": cidr}
    if comment:
        out["comment"] = comment
    return out


for _level in _ipset_levels():
    _register_aliases(_level)
