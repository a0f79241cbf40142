"""refs, guest extras (refs, log), node log, the macro list and the firewall index routes."""

from __future__ import annotations

import time

from ...params import P
from ...router import Result, api
from .levels import GUEST_LEVELS, LEVELS, Level
from .schema import MACROS


# ---- refs, macros, logs, indexes ----------------------------------------------------------------

def _refs(conf: dict, scope: str, kind: str | None) -> list[dict]:
    out = []
    if kind in (None, "alias"):
        for a in sorted(conf["aliases"].values(), key=lambda a: a["name"]):
            out.append({"type": "alias", "name": a["name"], "ref": f"{scope}/{a['name']}", "scope": scope,
                        **({"comment": a["comment"]} if a.get("comment") else {})})
    if kind in (None, "ipset"):
        for name, s in sorted(conf["ipsets"].items()):
            out.append({"type": "ipset", "name": name, "ref": f"+{scope}/{name}", "scope": scope,
                        **({"comment": s["comment"]} if s.get("comment") else {})})
    return out


REF_TYPE = P.enum(["alias", "ipset"])


@api.get("/cluster/firewall/refs", params={"type": REF_TYPE})
def cluster_refs(ctx, p):
    ctx.check("/", "Sys.Audit")
    with ctx.cluster.lock:
        return _refs(ctx.cluster.firewall["cluster"], "dc", p.get("type"))


def _register_guest_extras(level: Level):
    @api.get(f"{level.prefix}/refs", params={**level.path_params, "type": REF_TYPE}, proxyto=level.proxyto)
    def guest_refs(ctx, p):
        level.audit(ctx, p)
        with ctx.cluster.lock:
            conf = level.conf(ctx.cluster, p)
            return _refs(ctx.cluster.firewall["cluster"], "dc", p.get("type")) + _refs(conf, "guest", p.get("type"))

    @api.get(f"{level.prefix}/log", params={**level.path_params, **LOG_PARAMS}, proxyto=level.proxyto)
    def guest_log(ctx, p):
        ctx.check(f"/vms/{p['vmid']}", "VM.Console")
        with ctx.cluster.lock:
            conf = level.conf(ctx.cluster, p)
            active = _enabled(ctx.cluster) and bool(conf["options"].get("enable"))
            lines = _synthetic_log(p["vmid"], conf, f"tap{p['vmid']}i0") if active else []
        return _page(lines, p)

    @api.get(level.prefix, params=dict(level.path_params), proxyto=level.proxyto)
    def guest_index(ctx, p):
        return [{"name": n} for n in ("rules", "aliases", "ipset", "refs", "options", "log")]


LOG_PARAMS = {"limit": P.integer(minimum=0), "start": P.integer(minimum=0), "since": P.integer(minimum=0),
              "until": P.integer(minimum=0)}

for _level in GUEST_LEVELS:
    _register_guest_extras(_level)


def _enabled(cluster) -> bool:
    return bool(int(cluster.firewall["cluster"]["options"].get("enable", 0)))


def _synthetic_log(vmid, conf: dict, chain: str, host_ip: str | None = None) -> list[str]:
    """A few pvefw-logger lines shaped like the real ones: what the default policy dropped."""
    policy = conf["options"].get("policy_in", "DROP")
    stamp = time.strftime("%d/%b/%Y:%H:%M:%S %z", time.localtime(time.time() - 60))
    lines = [f"0 5 - {stamp} starting pvefw logger"]
    for i, (src, dport) in enumerate((("203.0.113.7", 3389), ("198.51.100.23", 23), ("192.0.2.41", 5900))):
        if host_ip:  # the host's own chain: traffic to the node's address
            where, dst = "IN=vmbr0 PHYSIN=eno1", host_ip
        else:
            where, dst = f"IN=fwbr{vmid}i0 OUT=fwbr{vmid}i0 PHYSIN=fwln{vmid}i0 PHYSOUT={chain}", f"10.20.0.{vmid % 250}"
        lines.append(f"{vmid} 6 {chain}-IN {stamp} policy {policy}: {where} SRC={src} DST={dst} LEN=60 TOS=0x00 "
                     f"PREC=0x00 TTL=52 ID={40000 + i} DF PROTO=TCP SPT={51000 + i} DPT={dport} SEQ={1000 * i} "
                     "ACK=0 WINDOW=64240 SYN")
    return lines


def _page(lines: list[str], p: dict) -> Result:
    start, limit = p.get("start", 0), p.get("limit", 50)
    chosen = lines[start:start + limit] if limit else lines[start:]
    return Result([{"n": start + i + 1, "t": t} for i, t in enumerate(chosen)], total=len(lines))


@api.get("/nodes/{node}/firewall/log", params={"node": P.node(), **LOG_PARAMS}, proxyto="node")
def node_log(ctx, p):
    ctx.check(f"/nodes/{p['node']}", "Sys.Syslog")
    with ctx.cluster.lock:
        conf = LEVELS[1].conf(ctx.cluster, p)
        active = _enabled(ctx.cluster) and bool(int(conf["options"].get("enable", 1)))
        cluster_conf = {"options": ctx.cluster.firewall["cluster"]["options"]}
        node_ip = ctx.cluster.nodes[p["node"]].ip
        lines = _synthetic_log(0, cluster_conf, "PVEFW-HOST", host_ip=node_ip) if active else []
    return _page(lines, p)


@api.get("/cluster/firewall/macros", params={})
def macros(ctx, p):
    return [{"macro": name, "descr": descr} for name, descr in sorted(MACROS.items(), key=lambda kv: kv[0].lower())]


@api.get("/cluster/firewall", params={})
def cluster_index(ctx, p):
    return [{"name": n} for n in ("aliases", "groups", "ipset", "macros", "options", "refs", "rules")]


@api.get("/nodes/{node}/firewall", params={"node": P.node()}, proxyto="node")
def node_index(ctx, p):
    return [{"name": n} for n in ("log", "options", "rules")]
