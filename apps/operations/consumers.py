"""Websocket `/ws/operations/<uuid>/?after=<seq>&format=json|html`: replay, then stream.

The user must be allowed to see the operation (same selector as the pages and the API);
otherwise the handshake is refused. JSON clients get every event with seq > after, then live
events, and the socket closes after the final one. htmx clients (`format=html`) get the
panel body once (so a reconnect never duplicates lines), then oob fragments per event.

Redis (the channel layer) away, at the handshake or later: the client still gets what
PostgreSQL has (the replay), then a close with 1013 "try again later", on which htmx's ws
extension and API clients reconnect (with ?after=<last seq>) - never an HTTP 500 handshake.
"""

from __future__ import annotations

import logging
from urllib.parse import parse_qs

import redis
from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncJsonWebsocketConsumer

from . import live
from .selectors import operation_events, operation_get

logger = logging.getLogger(__name__)
CLOSE_FORBIDDEN = 4403  # not logged in, or the operation is not visible to this user
CLOSE_BAD_REQUEST = 4400
CLOSE_TRY_AGAIN = 1013  # live updates unavailable (Redis away): reconnect later and replay
_LAYER_DOWN = (redis.ConnectionError, redis.TimeoutError, ConnectionError, OSError)


class OperationConsumer(AsyncJsonWebsocketConsumer):
    group = None
    _handshake_seen = False  # websocket.connect received
    _opened = False  # accepted (or refused): the handshake is answered
    _closed = False

    async def __call__(self, scope, receive, send):
        try:
            await super().__call__(scope, receive, send)
        except _LAYER_DOWN as exc:  # the channel layer failed: receive loop, group_add or group_send
            logger.warning("operation websocket: channel layer unreachable (%s); replay only", exc)
            await self._without_live_updates(receive)

    async def _without_live_updates(self, receive):
        if self._closed:
            return
        if not self._handshake_seen:
            message = await receive()
            if message.get("type") != "websocket.connect":
                return
        if not self._opened:
            operation = await self._checked_operation()
            if operation is None:
                return
            if not await self._accept_and_replay(operation):
                return
        self._closed = True
        await self.close(code=CLOSE_TRY_AGAIN)

    async def websocket_connect(self, message):
        self._handshake_seen = True
        await super().websocket_connect(message)

    async def close(self, code=None, reason=None):
        self._opened = True
        await super().close(code=code, reason=reason)

    async def _checked_operation(self):
        """The operation if the query is valid and the user may see it; else the socket is refused."""
        query = parse_qs(self.scope.get("query_string", b"").decode())
        self.format = "html" if query.get("format", ["json"])[0] == "html" else "json"
        try:
            self.last_seq = int(query.get("after", ["0"])[0])
        except ValueError:
            await self.close(code=CLOSE_BAD_REQUEST)
            return None
        operation = await database_sync_to_async(operation_get)(
            user=self.scope.get("user"), pk=self.scope["url_route"]["kwargs"]["pk"])
        if operation is None:
            await self.close(code=CLOSE_FORBIDDEN)
        return operation

    async def _accept_and_replay(self, operation) -> bool:
        """Accept and send what PostgreSQL has; False once the socket is closed (operation final)."""
        await self.accept()
        self._opened = True
        if self.format == "html":
            html, seq, active = await database_sync_to_async(self._body)(operation)
            await self.send(text_data=html)
            self.last_seq = max(self.last_seq, seq)
            return True
        replay, active = await database_sync_to_async(self._replay)(operation)
        for data in replay:
            await self.send_json(data)
            self.last_seq = data["seq"]
        if not active:
            self._closed = True
            await self.close()
            return False
        return True

    async def connect(self):
        operation = await self._checked_operation()
        if operation is None:
            return
        self.group = live.group_name(operation.pk)
        # Join before reading the replay: an event saved meanwhile arrives on the group later
        # and is dropped by seq if the replay already had it.
        await self.channel_layer.group_add(self.group, self.channel_name)
        await self._accept_and_replay(operation)

    def _body(self, operation):
        operation.refresh_from_db()
        context = live.progress_context(operation)
        seq = context["events"][-1].seq if context["events"] else 0
        return live.render_body_html(operation), seq, operation.is_active

    def _replay(self, operation):
        operation.refresh_from_db()
        events = list(operation_events(operation=operation, after=self.last_seq))
        return [live.event_data(operation, event) for event in events], operation.is_active

    async def disconnect(self, code):
        self._closed = True
        if self.group:
            try:
                await self.channel_layer.group_discard(self.group, self.channel_name)
            except _LAYER_DOWN as exc:  # the group entry expires by itself in Redis
                logger.info("group_discard of %s failed: %s", self.group, exc)

    async def live_message(self, message):
        data = message.get("data") or {}
        seq = data.get("seq", 0)
        if seq <= self.last_seq:
            return  # already sent by the replay
        self.last_seq = seq
        if self.format == "html":
            if message.get("html"):
                await self.send(text_data=message["html"])
            return
        await self.send_json(data)
        if data.get("operation", {}).get("status") not in ("pending", "running"):
            self._closed = True
            await self.close()
