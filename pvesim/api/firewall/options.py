"""The firewall options routes of every level."""

from __future__ import annotations


from ...errors import param_errors
from ...params import P
from ...router import api
from .levels import LEVELS, Level, _assert_digest, _split, digest_of
from .schema import CLUSTER_OPTIONS, DIGEST, GUEST_OPTIONS, NODE_OPTIONS


# ---- options --------------------------------------------------------------------------------

def _register_options(level: Level, option_params: dict):
    path = f"{level.prefix}/options"

    @api.get(path, params=dict(level.path_params), proxyto=level.proxyto)
    def get_options(ctx, p):
        level.audit(ctx, p)
        with ctx.cluster.lock:
            conf = level.conf(ctx.cluster, p)
            return {**conf["options"], "digest": digest_of(conf)}

    @api.put(path, params={**level.path_params, **option_params, "delete": P.string(format="pve-configid-list"),
                           "digest": DIGEST}, proxyto=level.proxyto)
    def set_options(ctx, p):
        level.modify(ctx, p)
        with ctx.cluster.lock:
            conf = level.conf(ctx.cluster, p)
            _assert_digest(conf, p)
            deletes = _split(p.get("delete"))
            for key in deletes:
                if key not in option_params:
                    param_errors({"delete": f"no such option '{key}'"})
            for key in deletes:
                conf["options"].pop(key, None)
            conf["options"].update({k: v for k, v in p.items() if k in option_params})
        return None


for _level, _opts in zip(LEVELS, (CLUSTER_OPTIONS, NODE_OPTIONS, GUEST_OPTIONS, GUEST_OPTIONS)):
    _register_options(_level, _opts)
