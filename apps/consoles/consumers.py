"""The console relay: `/ws/guests/<id>/console/` and `/ws/nodes/<id>/console/`.

Checks the policy, records the session, asks Proxmox for a ticket, opens Proxmox's vncwebsocket
(authenticated by the gateway), and relays bytes both ways. For VMs the relay answers the
browser's RFB security handshake itself with "None": Proxmox's VNC authentication (keyed by the
ticket) happened upstream, so neither the ticket nor the VNC password ever reaches the browser.
Every refusal is an accepted socket closed with a 44xx/45xx code and a reason the page shows.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from types import SimpleNamespace

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncWebsocketConsumer
from django.contrib.auth import get_user_model

from apps.core import live, scoping
from apps.proxmox import console as gateway
from apps.proxmox.errors import ProxmoxAuthError, ProxmoxError

from . import services
from .services import (
    CONNECTION_LOST,
    NOT_LOGGED_IN,
    NOT_RUNNING,
    TICKET_REFUSED,
    ConsoleRefused,
)

RFB_VERSION = b"RFB 003.008\n"


class ConsoleConsumer(AsyncWebsocketConsumer):
    target = "guest"

    async def connect(self):
        self.upstream = None
        self.session_id = None
        self.pump = None
        self.bytes_in = self.bytes_out = 0
        self.end_reason = "closed by the browser"
        self.handshake = None  # VMs: "version", "security", then None (relaying)
        self.pending = b""
        offered = self.scope.get("subprotocols") or []
        await self.accept(subprotocol="binary" if "binary" in offered else None)
        user = self.scope.get("user")
        if user is None or not user.is_authenticated:
            return await self.refuse(NOT_LOGGED_IN, "log in first")
        try:
            target, self.session_id = await database_sync_to_async(self._prepare)()
            # Off the shared database thread: sessions opening together ask Proxmox in parallel.
            client, ticket = await asyncio.to_thread(services.ticket_for, target)
        except ConsoleRefused as exc:
            self.end_reason = exc.message
            return await self.refuse(exc.code, exc.message)
        self.kind = target.kind
        # Access changes (membership removed, consoles withheld) make this console re-check itself.
        self.access_group = live.access_group(user.pk)
        await self.channel_layer.group_add(self.access_group, self.channel_name)
        try:
            self.upstream = await gateway.open_console(client, target.kind, target.node, target.vmid, ticket)
        except ProxmoxError as exc:
            code = TICKET_REFUSED if isinstance(exc, ProxmoxAuthError) else CONNECTION_LOST
            self.end_reason = f"Proxmox: {exc}"
            return await self.refuse(code, str(exc))
        finally:
            del ticket  # held no longer than the upstream handshake
            await asyncio.to_thread(client.close)
        self.seen = time.monotonic()
        if self.kind == "qemu":
            self.handshake = "version"
            await self._to_browser(RFB_VERSION)
        self.pump = asyncio.ensure_future(self._pump())

    def _resolve(self):
        user = get_user_model().objects.filter(pk=self.scope["user"].pk, is_active=True).first()
        if user is None:
            raise ConsoleRefused(NOT_LOGGED_IN, "the account is gone or disabled")
        token = scoping.serving(SimpleNamespace(user=user, auth=self.scope.get("auth"), session=self.scope.get("session")))
        try:
            pk = int(self.scope["url_route"]["kwargs"]["pk"])
            resolve = services.resolve_node if self.target == "node" else services.resolve_guest
            return resolve(user=user, pk=pk)
        finally:
            scoping.done_serving(token)

    async def live_reauth(self, event):
        """Close the console when its user may no longer open it (403/404 as at connect)."""
        try:
            await database_sync_to_async(self._resolve)()
        except ConsoleRefused as exc:
            if exc.code != NOT_RUNNING:  # a stopped guest ends the session on its own
                self.end_reason = f"access withdrawn: {exc.message}"
                await self.refuse(exc.code, exc.message)

    def _prepare(self):
        """Policy, limits and the session's audit row (sync: database calls)."""
        target = self._resolve()
        client_addr = (self.scope.get("client") or [None])[0]
        session = services.session_open(user=self.scope["user"], target=target, remote_addr=client_addr)
        return target, session.pk

    async def refuse(self, code: int, reason: str) -> None:
        await self.close(code=code, reason=reason.encode()[:120].decode(errors="ignore"))

    async def _to_browser(self, data: bytes) -> None:
        await self.send(bytes_data=data)

    async def receive(self, text_data=None, bytes_data=None):
        data = bytes_data if bytes_data is not None else (text_data or "").encode()
        if self.upstream is None or not data:
            return
        if self.handshake is not None:
            return await self._browser_handshake(data)
        self.bytes_in += len(data)
        with contextlib.suppress(Exception):  # the pump sees the same failure and closes
            await self.upstream.send(data)

    async def _browser_handshake(self, data: bytes) -> None:
        """The browser's half of RFB 3.8 up to SecurityResult: version, then security type None."""
        self.pending += data
        if self.handshake == "version" and len(self.pending) >= 12:
            self.pending = self.pending[12:]
            self.handshake = "security"
            await self._to_browser(b"\x01\x01")  # one type: None (authenticated upstream)
        if self.handshake == "security" and len(self.pending) >= 1:
            choice, rest = self.pending[0], self.pending[1:]
            self.pending = b""
            if choice != 1:
                return await self.close(code=4400, reason="unsupported RFB security type")
            await self._to_browser(b"\x00\x00\x00\x00")
            self.handshake = None
            if rest:
                await self.receive(bytes_data=rest)

    async def _pump(self):
        from websockets.exceptions import ConnectionClosed

        try:
            while True:
                try:  # recv is cancellation-safe: a timeout loses no message
                    data = await asyncio.wait_for(self.upstream.recv(), services.SEEN_EVERY)
                except TimeoutError:
                    data = b""  # idle: the row is still refreshed, so the session keeps counting
                if data:
                    self.bytes_out += len(data)
                    await self._to_browser(data)
                if time.monotonic() - self.seen > services.SEEN_EVERY:
                    self.seen = time.monotonic()
                    await database_sync_to_async(services.session_seen)(
                        session_id=self.session_id, bytes_in=self.bytes_in, bytes_out=self.bytes_out)
        except asyncio.CancelledError:
            raise
        except ConnectionClosed:
            self.end_reason = "Proxmox closed the console"
        except Exception as exc:  # noqa: BLE001 - any upstream failure is a lost connection
            self.end_reason = f"relay error: {exc}"
        await self.close(code=CONNECTION_LOST, reason="connection to the console lost")

    async def disconnect(self, code):
        if self.pump is not None and not self.pump.done():
            self.pump.cancel()
        if self.upstream is not None:
            with contextlib.suppress(Exception):  # already gone
                await self.upstream.close()
        if getattr(self, "access_group", None):
            await self.channel_layer.group_discard(self.access_group, self.channel_name)
        if self.session_id is not None:
            session_id, self.session_id = self.session_id, None
            await database_sync_to_async(services.session_close)(
                session_id=session_id, bytes_in=self.bytes_in, bytes_out=self.bytes_out, reason=self.end_reason)


class NodeConsoleConsumer(ConsoleConsumer):
    target = "node"
