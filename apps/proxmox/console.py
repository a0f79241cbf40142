"""Consoles: ask Proxmox for a console ticket (vncproxy / termproxy) and open the websocket to its
`vncwebsocket`, authenticated as Proxmox expects, so the portal can relay it to a browser.

The ticket and the VNC password stay in here and in the relay's memory: `open_console` returns a
connection that has already passed Proxmox's authentication (the termproxy `user:ticket` line, or
RFB's VNC authentication with the ticket as password), so the browser never needs either.
TLS is the cluster's (verify, CA, pinned fingerprint checked before the token is sent, insecure).
"""

from __future__ import annotations

import hashlib
import ssl
import struct
from types import SimpleNamespace
from typing import Literal, Required, TypedDict
from urllib.parse import urlencode

from .client import ProxmoxClient, normalize_fingerprint
from .errors import ProxmoxAuthError, ProxmoxTLSError, ProxmoxUnreachable

Kind = Literal["qemu", "lxc", "node"]
RFB_VERSION = b"RFB 003.008\n"


class ConsoleTicket(TypedDict, total=False):
    """What vncproxy / termproxy answer: user, ticket, port and upid are promised."""

    user: Required[str]
    ticket: Required[str]
    port: Required[int]
    upid: Required[str]
    password: str  # VNC password when Proxmox generated one; else the ticket is the password
    cert: str


def _ticket(data) -> ConsoleTicket:
    data = data or {}
    out: ConsoleTicket = {"user": str(data.get("user") or ""), "ticket": str(data.get("ticket") or ""),
                          "port": int(data.get("port") or 0), "upid": str(data.get("upid") or "")}
    if data.get("password"):
        out["password"] = str(data["password"])
    return out


def vnc_ticket(client: ProxmoxClient, node: str, vmid: int) -> ConsoleTicket:
    """POST /nodes/{node}/qemu/{vmid}/vncproxy websocket=1: a VM's display."""
    return _ticket(client.post(f"nodes/{node}/qemu/{vmid}/vncproxy", websocket=True))


def term_ticket(client: ProxmoxClient, node: str, vmid: int) -> ConsoleTicket:
    """POST /nodes/{node}/lxc/{vmid}/termproxy: a container's console."""
    return _ticket(client.post(f"nodes/{node}/lxc/{vmid}/termproxy"))


def node_shell_ticket(client: ProxmoxClient, node: str) -> ConsoleTicket:
    """POST /nodes/{node}/termproxy: a shell on the node (Sys.Console)."""
    return _ticket(client.post(f"nodes/{node}/termproxy"))


def request_ticket(client: ProxmoxClient, kind: Kind, node: str, vmid: int | None) -> ConsoleTicket:
    if kind == "qemu":
        return vnc_ticket(client, node, vmid)
    if kind == "lxc":
        return term_ticket(client, node, vmid)
    return node_shell_ticket(client, node)


def _websocket_path(kind: Kind, node: str, vmid: int | None, ticket: ConsoleTicket) -> str:
    base = f"/api2/json/nodes/{node}" + (f"/{kind}/{vmid}" if kind != "node" else "")
    return f"{base}/vncwebsocket?" + urlencode({"port": ticket["port"], "vncticket": ticket["ticket"]})


def _auth_header(client: ProxmoxClient) -> str:
    """The client's `Authorization: PVEAPIToken=...` value, as proxmoxer would send it."""
    req = SimpleNamespace(headers={})
    client._api._store["session"].auth(req)
    return req.headers["Authorization"]


def _ssl_context(client: ProxmoxClient) -> ssl.SSLContext:
    if client.tls_mode in ("pin", "insecure"):
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE  # pin: the fingerprint is compared before any byte is sent
        return context
    verify = client._api._store["session"].verify
    return ssl.create_default_context(cafile=verify if isinstance(verify, str) else None)


class Upstream:
    """An open, authenticated console websocket to Proxmox: `send(bytes|str)`, `recv()` (bytes),
    `close()`. For VMs the RFB stream continues right after the security result: the next bytes
    the caller sends are the ClientInit."""

    def __init__(self, conn, kind: Kind, pending: bytes = b""):
        self.conn, self.kind, self.pending = conn, kind, pending

    async def send(self, data: bytes | str) -> None:
        await self.conn.send(data.encode() if isinstance(data, str) else data)

    async def recv(self) -> bytes:
        if self.pending:
            data, self.pending = self.pending, b""
            return data
        msg = await self.conn.recv()
        return msg.encode() if isinstance(msg, str) else msg

    async def close(self) -> None:
        await self.conn.close()


async def open_console(client: ProxmoxClient, kind: Kind, node: str, vmid: int | None, ticket: ConsoleTicket,
                       *, open_timeout: float = 10) -> Upstream:
    """Connect to vncwebsocket with `ticket` and pass Proxmox's console authentication.
    ProxmoxTLSError (fingerprint), ProxmoxUnreachable (cannot connect, closed early),
    ProxmoxAuthError (ticket or VNC password refused)."""
    from websockets.asyncio.client import ClientConnection, connect
    from websockets.exceptions import (
        ConnectionClosed,
        InvalidStatus,
        WebSocketException,
    )

    expected = client.fingerprint
    mismatch: list[str] = []

    class PinnedConnection(ClientConnection):
        def connection_made(self, transport):
            super().connection_made(transport)
            if expected:
                der = transport.get_extra_info("ssl_object").getpeercert(binary_form=True)
                actual = normalize_fingerprint(hashlib.sha256(der).hexdigest())
                if actual != expected:
                    mismatch.append(actual)
                    transport.abort()  # before the handshake request (and its token) is written

    uri = f"wss://{client.host}:{client.port}" + _websocket_path(kind, node, vmid, ticket)
    try:
        conn = await connect(uri, ssl=_ssl_context(client), additional_headers={"Authorization": _auth_header(client)},
                             subprotocols=["binary"], create_connection=PinnedConnection, open_timeout=open_timeout,
                             max_size=2 ** 22, ping_interval=None, compression=None)
    except InvalidStatus as exc:
        status = exc.response.status_code
        if status in (401, 403):
            raise ProxmoxAuthError(f"console ticket refused ({status})", status=status) from exc
        raise ProxmoxUnreachable(f"vncwebsocket answered {status}", status=status) from exc
    except (OSError, TimeoutError, WebSocketException) as exc:
        if mismatch:
            raise ProxmoxTLSError(f"TLS fingerprint mismatch for {client.host}:{client.port}: expected {expected}, "
                                  f"server presented {mismatch[0]}", expected=expected, actual=mismatch[0]) from exc
        raise ProxmoxUnreachable(f"cannot open the console websocket to {client.host}:{client.port}: {exc}") from exc
    try:
        if kind == "qemu":
            pending = await _vnc_login(conn, ticket.get("password") or ticket["ticket"])
        else:
            await conn.send(f"{ticket['user']}:{ticket['ticket']}\n".encode())
            first = await conn.recv()
            first = first.encode() if isinstance(first, str) else first
            if not first.startswith(b"OK"):
                raise ProxmoxAuthError("termproxy refused the ticket", status=401)
            pending = first[2:]
    except ConnectionClosed as exc:
        raise ProxmoxUnreachable("Proxmox closed the console during its handshake") from exc
    except BaseException:
        await conn.close()
        raise
    return Upstream(conn, kind, pending)


class _Reader:
    def __init__(self, conn):
        self.conn, self.buf = conn, b""

    async def read(self, n: int) -> bytes:
        while len(self.buf) < n:
            msg = await self.conn.recv()
            self.buf += msg.encode() if isinstance(msg, str) else msg
        out, self.buf = self.buf[:n], self.buf[n:]
        return out


def vnc_password_response(password: str, challenge: bytes) -> bytes:
    """RFB VNC authentication: the challenge encrypted by DES keyed with the password's first 8
    bytes, the bits of each key byte mirrored."""
    from cryptography.hazmat.decrepit.ciphers.algorithms import TripleDES
    from cryptography.hazmat.primitives.ciphers import Cipher, modes

    key = bytearray(password.encode("latin-1")[:8].ljust(8, b"\x00"))
    for index, byte in enumerate(key):
        key[index] = int(f"{byte:08b}"[::-1], 2)
    cipher = Cipher(TripleDES(bytes(key) * 3), modes.ECB())
    enc = cipher.encryptor()
    return enc.update(challenge) + enc.finalize()


async def _vnc_login(conn, password: str) -> bytes:
    """RFB 3.8 up to a successful SecurityResult; returns what arrived after it."""
    reader = _Reader(conn)
    version = await reader.read(12)
    if not version.startswith(b"RFB "):
        raise ProxmoxUnreachable("the console did not speak RFB")
    await conn.send(RFB_VERSION)
    count = (await reader.read(1))[0]
    if count == 0:
        length = struct.unpack(">I", await reader.read(4))[0]
        raise ProxmoxAuthError(f"VNC server refused: {(await reader.read(length)).decode(errors='replace')}", status=401)
    types = await reader.read(count)
    if 2 not in types:
        raise ProxmoxAuthError("VNC server does not offer VNC authentication", status=401)
    await conn.send(b"\x02")
    challenge = await reader.read(16)
    await conn.send(vnc_password_response(password, challenge))
    if struct.unpack(">I", await reader.read(4))[0] != 0:
        raise ProxmoxAuthError("VNC authentication with the console ticket failed", status=401)
    return reader.buf
