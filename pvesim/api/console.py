"""Consoles: vncproxy / termproxy hand out a one-time ticket and a port, and vncwebsocket turns
the request into a websocket that carries RFB (VMs) or the line terminal (containers, nodes).

As in PVE: the ticket is bound to the caller and to its guest or node and port, expires when
unused (here after TICKET_TTL real seconds), each ticket opens one websocket, a node has ports
5900-5999 only, and each proxy runs as a task (`vncproxy`, `vncshell`) that ends with its
session; stopping that task or the VM closes the session.
"""

from __future__ import annotations

import secrets
import threading
import time
from dataclasses import dataclass, field

from .. import rfb
from ..errors import ApiError, TaskError
from ..params import P
from ..router import Upgrade, api

TICKET_TTL = 30.0
PORTS = range(5900, 6000)


@dataclass
class Proxy:
    ticket: str
    password: str
    port: int
    node: str
    kind: str  # qemu | lxc | node
    vmid: int | None
    authid: str
    expires: float
    used: bool = False
    done: threading.Event = field(default_factory=threading.Event)
    stop: threading.Event = field(default_factory=threading.Event)


class Consoles:
    def __init__(self, cluster):
        self.cluster = cluster
        self.proxies: dict[str, Proxy] = {}
        self.opened = 0  # websockets opened since start (tests read it)

    def issue(self, *, node: str, kind: str, vmid: int | None, authid: str, password: str | None = None) -> Proxy:
        ticket = f"PVEVNC:{int(time.time()):08X}::{secrets.token_urlsafe(32)}"
        with self.cluster.lock:
            self._expire()
            taken = {p.port for p in self.proxies.values() if p.node == node}
            port = next((n for n in PORTS if n not in taken), None)
            if port is None:
                raise ApiError(500, f"unable to find free port ({PORTS.start}-{PORTS.stop - 1})")
            proxy = Proxy(ticket=ticket, password=password or ticket, port=port, node=node, kind=kind,
                          vmid=vmid, authid=authid, expires=time.monotonic() + TICKET_TTL)
            self.proxies[ticket] = proxy
        return proxy

    def claim(self, ticket: str, *, port: int, node: str, kind: str, vmid: int | None, authid: str) -> Proxy:
        with self.cluster.lock:
            self._expire()
            proxy = self.proxies.get(ticket)
            if (proxy is None or proxy.used or proxy.port != port or proxy.node != node or proxy.kind != kind
                    or proxy.vmid != vmid or proxy.authid != authid):
                raise ApiError(401, "permission denied - invalid vncticket")
            proxy.used = True
            self.opened += 1
            return proxy

    def release(self, proxy: Proxy) -> None:
        proxy.done.set()
        with self.cluster.lock:
            self.proxies.pop(proxy.ticket, None)

    def _expire(self) -> None:
        now = time.monotonic()
        for ticket, proxy in list(self.proxies.items()):
            if not proxy.used and proxy.expires < now:
                del self.proxies[ticket]
                proxy.done.set()


def install(cluster, scenario) -> None:
    cluster.consoles = Consoles(cluster)


def _start_task(ctx, proxy: Proxy, type_: str, id_) -> str:
    def worker(t):
        while not proxy.done.wait(0.5):
            if t.task.stop_requested.is_set():
                proxy.stop.set()
                break
            if not proxy.used and proxy.expires < time.monotonic():
                ctx.cluster.consoles.release(proxy)
                raise TaskError("connection timed out")
        t.log("connection closed")

    return ctx.cluster.tasks.start(node=proxy.node, type=type_, id=id_, user=ctx.authid, worker=worker)


def _guest(ctx, p, type_: str):
    ctx.check(f"/vms/{p['vmid']}", "VM.Console")
    with ctx.cluster.lock:
        guest = ctx.cluster.guest(p["vmid"], type_, p["node"])
        if guest.status != "running":
            raise ApiError(500, f"{guest.kind} {guest.vmid} not running")
        return guest


def _answer(proxy: Proxy, upid: str, *, password: bool = False, cert: bool = False) -> dict:
    out = {"user": proxy.authid, "ticket": proxy.ticket, "port": proxy.port, "upid": upid}
    if cert:
        out["cert"] = ""
    if password:
        out["password"] = proxy.password
    return out


NODE_VMID = {"node": P.node(), "vmid": P.vmid()}
SOCKET = {"port": P.integer(optional=False, minimum=5900, maximum=5999),
          "vncticket": P.string(optional=False, max_length=512)}


@api.post("/nodes/{node}/qemu/{vmid}/vncproxy", params={
    **NODE_VMID, "generate-password": P.boolean(), "websocket": P.boolean()}, proxyto="node")
def qemu_vncproxy(ctx, p):
    guest = _guest(ctx, p, "qemu")
    generated = bool(p.get("generate-password"))
    password = "".join(secrets.choice([chr(c) for c in range(0x21, 0x7F)]) for _ in range(8)) if generated else None
    proxy = ctx.cluster.consoles.issue(node=p["node"], kind="qemu", vmid=guest.vmid, authid=ctx.authid,
                                       password=password)
    return _answer(proxy, _start_task(ctx, proxy, "vncproxy", guest.vmid), password=generated, cert=True)


@api.post("/nodes/{node}/lxc/{vmid}/termproxy", params=NODE_VMID, proxyto="node")
def lxc_termproxy(ctx, p):
    guest = _guest(ctx, p, "lxc")
    proxy = ctx.cluster.consoles.issue(node=p["node"], kind="lxc", vmid=guest.vmid, authid=ctx.authid)
    return _answer(proxy, _start_task(ctx, proxy, "vncproxy", guest.vmid))


@api.post("/nodes/{node}/termproxy", params={
    "node": P.node(), "cmd": P.enum(["ceph_install", "login", "upgrade"]), "cmd-opts": P.string()}, proxyto="node")
def node_termproxy(ctx, p):
    ctx.check(f"/nodes/{p['node']}", "Sys.Console")
    ctx.cluster.node(p["node"])
    proxy = ctx.cluster.consoles.issue(node=p["node"], kind="node", vmid=None, authid=ctx.authid)
    return _answer(proxy, _start_task(ctx, proxy, "vncshell", ""))


def _websocket(ctx, p, kind: str):
    vmid = p.get("vmid")
    if kind == "node":
        ctx.check(f"/nodes/{p['node']}", "Sys.Console")
    else:
        ctx.check(f"/vms/{vmid}", "VM.Console")
    cluster = ctx.cluster
    proxy = cluster.consoles.claim(p["vncticket"], port=p["port"], node=p["node"], kind=kind, vmid=vmid,
                                   authid=ctx.authid)

    def guest():
        return cluster.guests.get(vmid)

    def alive() -> bool:
        if proxy.stop.is_set():
            return False
        if kind == "node":
            return cluster.node(p["node"]).online
        current = guest()
        return current is not None and current.status == "running" and current.node == p["node"]

    def session(conn) -> None:
        """Serve the websocket `conn`; None: the client did not upgrade (the ticket is spent)."""
        try:
            if conn is None:
                return
            if kind == "qemu":
                def screen(keys: str):
                    current = guest()
                    status = current.status if current is not None else "destroyed"
                    name = current.name if current is not None else ""
                    return rfb.screen_lines(kind="VM", vmid=vmid, name=name, status=status, keys=keys)

                rfb.serve_rfb(conn, password=proxy.password, screen=screen, alive=alive,
                              desktop=f"VM {vmid} ('{guest().name}')")
            else:
                hostname = guest().name if kind == "lxc" else p["node"]
                rfb.serve_terminal(conn, user=proxy.authid, ticket=proxy.ticket, hostname=hostname,
                                   prompt=f"root@{hostname}:~# ", alive=alive)
        finally:
            cluster.consoles.release(proxy)

    return Upgrade(data={"port": str(proxy.port)}, session=session)


@api.get("/nodes/{node}/qemu/{vmid}/vncwebsocket", params={**NODE_VMID, **SOCKET}, proxyto="node")
def qemu_vncwebsocket(ctx, p):
    return _websocket(ctx, p, "qemu")


@api.get("/nodes/{node}/lxc/{vmid}/vncwebsocket", params={**NODE_VMID, **SOCKET}, proxyto="node")
def lxc_vncwebsocket(ctx, p):
    return _websocket(ctx, p, "lxc")


@api.get("/nodes/{node}/vncwebsocket", params={"node": P.node(), **SOCKET}, proxyto="node")
def node_vncwebsocket(ctx, p):
    return _websocket(ctx, p, "node")
