"""/nodes/{node}/lxc: containers (pve-semantics §3.3-§3.5). Shared machinery lives in guests.py.

Config changes to running CTs are applied at once (no pending section; `revert` is accepted and ignored).
"""

from __future__ import annotations

import re

from ..errors import ApiError
from ..params import P, PropString, parse_props
from ..router import api
from . import guests as G
from .guests import DURATION

b, i, s = P.boolean, P.integer, P.string

LOCKS = ["backup", "create", "destroyed", "disk", "fstrim", "migrate", "mounted", "rollback", "snapshot", "snapshot-delete"]
OSTYPES = ["debian", "devuan", "ubuntu", "centos", "fedora", "opensuse", "archlinux", "alpine", "gentoo", "nixos", "unmanaged"]
UNUSED = PropString({"volume": P.string(optional=False, format="pve-volume-id")}, default_key="volume")
_ENV_CHARS = r"[^\x00-\x08\x10-\x1F\x7F]"

OPTIONS = {
    "arch": P.enum(["amd64", "i386", "arm64", "armhf", "riscv32", "riscv64"]),
    "cmode": P.enum(["shell", "console", "tty"]), "console": b(), "cores": i(minimum=1, maximum=8192),
    "cpulimit": P.number(minimum=0, maximum=8192), "cpuunits": i(minimum=0, maximum=500000), "debug": b(),
    "description": s(max_length=8192), "dev[n]": s(prop=G.LXC_DEV, slots=256), "entrypoint": s(pattern=f"{_ENV_CHARS}+"),
    "env": s(pattern=rf"(?:\w+={_ENV_CHARS}*)(?:\0\w+={_ENV_CHARS}*)*"), "features": s(prop=G.LXC_FEATURES),
    "hookscript": s(format="pve-volume-id"), "hostname": s(format="dns-name", max_length=255),
    "lock": P.enum(LOCKS), "memory": i(minimum=16), "mp[n]": s(prop=G.LXC_MP, slots=256),
    "nameserver": s(format="lxc-ip-with-ll-iface-list"), "net[n]": s(prop=G.LXC_NET, slots=32), "onboot": b(),
    "ostype": P.enum(OSTYPES), "protection": b(), "rootfs": s(prop=G.LXC_ROOTFS),
    "searchdomain": s(format="dns-name-list"), "startup": s(format="pve-startup-order"), "swap": i(minimum=0),
    "tags": s(format="pve-tag-list"), "template": b(), "timezone": s(format="pve-ct-timezone"),
    "tty": i(minimum=0, maximum=6), "unprivileged": b(), "unused[n]": s(prop=UNUSED, slots=256),
}
NODE_VMID = {"node": P.node(), "vmid": P.vmid()}
DIGEST = s(max_length=40)
CREATE_ONLY = {"node", "vmid", "ostemplate", "password", "ssh-public-keys", "storage", "start", "pool", "restore",
               "force", "unique", "ignore-unpack-errors", "bwlimit", "ha-managed"}


def _ct(ctx, p):
    return ctx.cluster.guest(p["vmid"], "lxc", p["node"])


# ---- list and create ------------------------------------------------------------------------

@api.get("/nodes/{node}/lxc", params={"node": P.node()}, proxyto="node")
def ct_list(ctx, p):
    cluster = ctx.cluster
    with cluster.lock:
        return [G.list_item(cluster, g) for g in sorted(cluster.guests.values(), key=lambda g: g.vmid)
                if g.type == "lxc" and g.node == p["node"] and ctx.has(f"/vms/{g.vmid}", "VM.Audit")]


@api.post("/nodes/{node}/lxc", params={
    **NODE_VMID, **OPTIONS, "ostemplate": s(optional=False, max_length=255), "bwlimit": P.number(minimum=0),
    "force": b(), "ha-managed": b(), "ignore-unpack-errors": b(), "password": s(min_length=5),
    "pool": s(format="pve-poolid"), "restore": b(), "ssh-public-keys": s(), "start": b(),
    "storage": s(format="pve-storage-id"), "unique": b(),
}, proxyto="node")
def ct_create(ctx, p):
    """vzcreate: sync checks (template exists, storages), then a task extracting the template under `lock: create`."""
    cluster = ctx.cluster
    vmid, node, pool = p["vmid"], p["node"], p.get("pool")
    if "unique" in p and not p.get("restore"):
        raise ApiError(400, "Parameter verification failed.", {"unique": "missing property - 'restore' is required"})
    if p.get("restore"):
        from .backup import restore_guest  # backup.py loads after this module (api/__init__ order)
        return restore_guest(ctx, p, "lxc")
    G.check_vm_allocate(ctx, vmid, pool)
    G.check_pool(cluster, pool)
    unprivileged = p.get("unprivileged", 1)  # PVE creates unprivileged CTs unless told otherwise
    if not unprivileged:
        ctx.check("/", "Sys.Modify")
    if p.get("ha-managed"):
        ctx.check("/", "Sys.Console")
    template = p["ostemplate"]
    if ":" not in template:
        raise ApiError(500, f"unable to parse volume ID '{template}'")
    cluster.storage(template.split(":", 1)[0], node)
    if cluster.find_volume(template, node) is None:
        raise ApiError(500, f"volume '{template}' does not exist")
    storage = p.get("storage", "local")
    config = {k: v for k, v in p.items() if k not in CREATE_ONLY}
    config.setdefault("rootfs", f"{storage}:4")
    G.check_config_perms(ctx, vmid, config)
    disks = {k: str(v) for k, v in config.items() if k == "rootfs" or re.fullmatch(r"mp\d+", k)}
    for key, value in disks.items():
        if G.new_disk_spec(value) is None and G.disk_volid(key, value) is None and not value.startswith("/"):
            raise ApiError(400, "Parameter verification failed.", {key: f"invalid volume '{value}'"})
        if value.startswith("/") and not ctx.is_root:
            raise ApiError(500, "Only root can pass arbitrary filesystem paths.")
    G.check_disk_storages(ctx, node, "lxc", disks)
    defaults = {"arch": "amd64", "ostype": _ostype(template), "hostname": f"CT{vmid}", "memory": 512, "swap": 512,
                "unprivileged": unprivileged}
    guest = G.register_new_guest(cluster, vmid=vmid, type_="lxc", node=node, config=config, disks=disks,
                                 defaults=defaults)
    tmpl_vol = cluster.find_volume(template, node)

    def extract(t):
        st = cluster.storages[template.split(":", 1)[0]]
        path = f"{st.path or '/var/lib/vz'}/template/cache/{template.split('/')[-1]}"
        t.log(f"extracting archive '{path}'")
        t.sleep(DURATION["create"] * 0.7)
        total = (tmpl_vol.size if tmpl_vol else 120 * 1024 ** 2) * 4
        t.log(f"Total bytes read: {total} ({G.human(total).replace(' ', '')}, 180MiB/s)")
        t.log(f"Detected container architecture: {guest.config.get('arch', 'amd64')}")
        if guest.config.get("ostype") not in ("alpine", "unmanaged"):
            for kind in ("rsa", "ecdsa", "ed25519"):
                t.log(f"Creating SSH host key 'ssh_host_{kind}_key' - this may take some time ...")
                t.log(f"done: SHA256:{_fake_fp(vmid, kind)} root@{guest.config.get('hostname')}")
        t.sleep(DURATION["create"] * 0.3)

    return G.create_task(ctx, guest, p, disks, extract)


def _ostype(template: str) -> str:
    name = template.split("/")[-1].lower()
    for ostype in OSTYPES:
        if name.startswith(ostype):
            return ostype
    return "unmanaged"


def _fake_fp(vmid: int, kind: str) -> str:
    import base64
    import hashlib
    return base64.b64encode(hashlib.sha256(f"{vmid}-{kind}".encode()).digest()).decode().rstrip("=")


# ---- index ---------------------------------------------------------------------------------

@api.get("/nodes/{node}/lxc/{vmid}", params=NODE_VMID, proxyto="node")
def ct_index(ctx, p):
    _ct(ctx, p)
    return [{"subdir": d} for d in ("config", "status", "vncproxy", "termproxy", "vncwebsocket", "spiceproxy",
                                    "migrate", "clone", "rrd", "rrddata", "firewall", "snapshot", "resize",
                                    "interfaces", "pending", "mtunnel", "remote_migrate")]


@api.get("/nodes/{node}/lxc/{vmid}/status", params=NODE_VMID, proxyto="node")
def ct_status_index(ctx, p):
    _ct(ctx, p)
    return [{"subdir": d} for d in ("current", "start", "stop", "shutdown", "reboot", "suspend", "resume")]


# ---- config ----------------------------------------------------------------------------------

@api.get("/nodes/{node}/lxc/{vmid}/config", params={
    **NODE_VMID, "current": b(), "snapshot": s(format="pve-configid", max_length=40)}, proxyto="node")
def ct_config(ctx, p):
    return G.with_guest(ctx, p, "lxc", lambda guest: G.config_payload(guest, p.get("snapshot")))


@api.get("/nodes/{node}/lxc/{vmid}/pending", params=NODE_VMID, proxyto="node")
def ct_pending(ctx, p):
    return G.with_guest(ctx, p, "lxc", G.pending_payload)


@api.put("/nodes/{node}/lxc/{vmid}/config", params={
    **NODE_VMID, **OPTIONS, "delete": s(format="pve-configid-list"), "digest": DIGEST,
    "revert": s(format="pve-configid-list")}, proxyto="node")
def ct_config_put(ctx, p):
    ctx.check(f"/vms/{p['vmid']}", "VM.Config.Disk", "VM.Config.CPU", "VM.Config.Memory", "VM.Config.Network",
              "VM.Config.Options", any=True)
    guest = _ct(ctx, p)
    for key, value in p.items():
        if (key == "rootfs" or re.fullmatch(r"mp\d+", key)) and str(value).startswith("/") and not ctx.is_root:
            raise ApiError(500, "Only root can pass arbitrary filesystem paths.")
    if "unprivileged" in p and not (str(p["unprivileged"]) == str(guest.config.get("unprivileged", 0))):
        raise ApiError(500, "unable to modify read-only option: 'unprivileged'")
    G.update_config(ctx, guest, p)
    return None


# ---- status ----------------------------------------------------------------------------------

@api.get("/nodes/{node}/lxc/{vmid}/status/current", params=NODE_VMID, proxyto="node")
def ct_status(ctx, p):
    return G.with_guest(ctx, p, "lxc", lambda guest: G.status_payload(ctx.cluster, guest))


def _power(ctx, p):
    ctx.check(f"/vms/{p['vmid']}", "VM.PowerMgmt")
    return _ct(ctx, p)


@api.post("/nodes/{node}/lxc/{vmid}/status/start", params={**NODE_VMID, "debug": b(), "skiplock": b()}, proxyto="node")
def ct_start(ctx, p):
    guest = _power(ctx, p)
    skiplock = G.check_skiplock(ctx, p)
    if guest.status == "running":
        raise ApiError(500, f"CT {guest.vmid} already running")
    return G.start_guest(ctx.cluster, guest, ctx.authid, skiplock=skiplock)


@api.post("/nodes/{node}/lxc/{vmid}/status/stop", params={
    **NODE_VMID, "overrule-shutdown": b(), "skiplock": b()}, proxyto="node")
def ct_stop(ctx, p):
    guest = _power(ctx, p)
    skiplock = G.check_skiplock(ctx, p)
    G.require_running(guest)
    return G.stop_guest(ctx.cluster, guest, ctx.authid, skiplock=skiplock)


@api.post("/nodes/{node}/lxc/{vmid}/status/shutdown", params={
    **NODE_VMID, "forceStop": b(), "timeout": i(minimum=0)}, proxyto="node")
def ct_shutdown(ctx, p):
    guest = _power(ctx, p)
    G.require_running(guest)
    return G.shutdown_guest(ctx.cluster, guest, ctx.authid, timeout=p.get("timeout", 60),
                            force_stop=bool(p.get("forceStop")))


@api.post("/nodes/{node}/lxc/{vmid}/status/reboot", params={**NODE_VMID, "timeout": i(minimum=0)}, proxyto="node")
def ct_reboot(ctx, p):
    cluster = ctx.cluster
    guest = _power(ctx, p)
    G.require_running(guest)

    def effect():
        cluster.guest_stopped(guest)
        cluster.guest_started(guest)

    return G.running_guest_task(ctx, guest, "reboot", DURATION["shutdown"] + DURATION["start"], effect)


@api.post("/nodes/{node}/lxc/{vmid}/status/suspend", params=NODE_VMID, proxyto="node")
def ct_suspend(ctx, p):
    guest = _power(ctx, p)
    G.require_running(guest)

    def effect():
        guest.qmpstatus = "paused"  # frozen cgroup; the API still reports status running

    return G.running_guest_task(ctx, guest, "suspend", DURATION["suspend"], effect)


@api.post("/nodes/{node}/lxc/{vmid}/status/resume", params=NODE_VMID, proxyto="node")
def ct_resume(ctx, p):
    guest = _power(ctx, p)
    G.require_running(guest)

    def effect():
        guest.qmpstatus = "running"

    return G.running_guest_task(ctx, guest, "resume", DURATION["resume"], effect)


# ---- destroy, clone, template, volumes ---------------------------------------------------------

@api.delete("/nodes/{node}/lxc/{vmid}", params={
    **NODE_VMID, "destroy-unreferenced-disks": b(), "force": b(), "purge": b()}, proxyto="node")
def ct_destroy(ctx, p):
    return G.destroy(ctx, _ct(ctx, p), p)


@api.post("/nodes/{node}/lxc/{vmid}/clone", params={
    **NODE_VMID, "newid": P.vmid(), "bwlimit": P.number(minimum=0), "description": s(), "full": b(),
    "hostname": s(format="dns-name"), "pool": s(format="pve-poolid"),
    "snapname": s(format="pve-configid", max_length=40), "storage": s(format="pve-storage-id"),
    "target": s(format="pve-node")}, proxyto="node")
def ct_clone(ctx, p):
    guest = _ct(ctx, p)
    if guest.status == "running" and not p.get("snapname"):
        for _key, volid in G.guest_volumes(guest, include_snapshots=False):
            if not G.storage_supports(ctx.cluster, volid, "snapshot"):
                raise ApiError(500, "snapshot feature is not available")
    return G.clone(ctx, guest, p)


@api.post("/nodes/{node}/lxc/{vmid}/template", params=NODE_VMID, proxyto="node")
def ct_template(ctx, p):
    return G.template(ctx, _ct(ctx, p), p, sync=True)


@api.put("/nodes/{node}/lxc/{vmid}/resize", params={
    **NODE_VMID, "disk": P.enum(G.disk_enum("lxc"), optional=False),
    "size": s(optional=False, pattern=r"\+?\d+(\.\d+)?[KMGT]?"), "digest": DIGEST}, proxyto="node")
def ct_resize(ctx, p):
    return G.resize(ctx, _ct(ctx, p), p)


@api.post("/nodes/{node}/lxc/{vmid}/move_volume", params={
    **NODE_VMID, "volume": P.enum(G.disk_enum("lxc") + [f"unused{n}" for n in range(256)], optional=False),
    "storage": s(format="pve-storage-id"), "delete": b(), "digest": DIGEST, "bwlimit": P.number(minimum=0)},
    proxyto="node")
def ct_move_volume(ctx, p):
    return G.move_disk(ctx, _ct(ctx, p), p, "volume")


@api.get("/nodes/{node}/lxc/{vmid}/feature", params={
    **NODE_VMID, "feature": P.enum(["snapshot", "clone", "copy"], optional=False),
    "snapname": s(format="pve-configid", max_length=40)}, proxyto="node")
def ct_feature(ctx, p):
    return G.with_guest(ctx, p, "lxc", lambda guest: G.feature(ctx.cluster, guest, p["feature"], p.get("snapname")))


# ---- snapshots ---------------------------------------------------------------------------------

SNAP = {**NODE_VMID, "snapname": s(optional=False, format="pve-configid", max_length=40)}


@api.get("/nodes/{node}/lxc/{vmid}/snapshot", params=NODE_VMID, proxyto="node")
def ct_snapshots(ctx, p):
    return G.with_guest(ctx, p, "lxc", G.snapshot_list)


@api.post("/nodes/{node}/lxc/{vmid}/snapshot", params={**SNAP, "description": s()}, proxyto="node")
def ct_snapshot_create(ctx, p):
    return G.snapshot_create(ctx, _ct(ctx, p), p)


@api.get("/nodes/{node}/lxc/{vmid}/snapshot/{snapname}", params=SNAP, proxyto="node")
def ct_snapshot_index(ctx, p):
    G.snapshot_get(_ct(ctx, p), p["snapname"])
    return [{"cmd": "rollback"}, {"cmd": "config"}]


@api.delete("/nodes/{node}/lxc/{vmid}/snapshot/{snapname}", params={**SNAP, "force": b()}, proxyto="node")
def ct_snapshot_delete(ctx, p):
    return G.snapshot_delete(ctx, _ct(ctx, p), p)


@api.post("/nodes/{node}/lxc/{vmid}/snapshot/{snapname}/rollback", params={**SNAP, "start": b()}, proxyto="node")
def ct_snapshot_rollback(ctx, p):
    return G.snapshot_rollback(ctx, _ct(ctx, p), p)


@api.get("/nodes/{node}/lxc/{vmid}/snapshot/{snapname}/config", params=SNAP, proxyto="node")
def ct_snapshot_config(ctx, p):
    return G.with_guest(ctx, p, "lxc", lambda guest: G.config_payload(guest, p["snapname"]),
                        "VM.Snapshot", "VM.Snapshot.Rollback", "VM.Audit")


@api.put("/nodes/{node}/lxc/{vmid}/snapshot/{snapname}/config", params={**SNAP, "description": s()}, proxyto="node")
def ct_snapshot_config_put(ctx, p):
    return G.with_guest(ctx, p, "lxc", lambda guest: G.snapshot_update(guest, p), "VM.Snapshot")


# ---- metrics and interfaces ----------------------------------------------------------------------

@api.get("/nodes/{node}/lxc/{vmid}/rrddata", params=G.rrd_params(), proxyto="node")
def ct_rrddata(ctx, p):
    return G.with_guest(ctx, p, "lxc", lambda guest: G.guest_rrddata(ctx.cluster, guest, p["timeframe"]))


@api.get("/nodes/{node}/lxc/{vmid}/interfaces", params=NODE_VMID, proxyto="node")
def ct_interfaces(ctx, p):
    ctx.check(f"/vms/{p['vmid']}", "VM.Audit")
    with ctx.cluster.lock:
        guest = _ct(ctx, p)
        G.require_running(guest)
        out = [{"name": "lo", "hwaddr": "00:00:00:00:00:00", "hardware-address": "00:00:00:00:00:00",
                "inet": "127.0.0.1/8", "inet6": "::1/128"}]
        for key in sorted((k for k in guest.config if re.fullmatch(r"net\d+", k)), key=lambda k: int(k[3:])):
            net = parse_props(str(guest.config[key]))
            mac = net.get("hwaddr", "").lower()
            ip = net.get("ip", "dhcp")
            if ip in ("dhcp", "manual"):
                n = int(key[3:])
                ip = f"10.{20 + n}.{guest.vmid // 250 % 250}.{guest.vmid % 250 + 2}/24"
            item = {"name": net.get("name", f"eth{key[3:]}"), "hwaddr": mac, "hardware-address": mac, "inet": ip}
            ip6 = net.get("ip6")
            if ip6 and ip6 not in ("auto", "dhcp", "manual"):
                item["inet6"] = ip6
            out.append(item)
        for item in out:  # the schema requires ip-addresses: every address with family and prefix
            item["ip-addresses"] = [_address(item[fam], fam) for fam in ("inet", "inet6") if fam in item]
        return out


def _address(cidr: str, family: str) -> dict:
    address, _, prefix = cidr.partition("/")
    return {"ip-address": address, "ip-address-type": family,
            "prefix": int(prefix) if prefix else (32 if family == "inet" else 128)}
