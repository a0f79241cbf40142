"""Websocket `/ws/operations/<uuid>/?after=<seq>&format=json|html`: replay, then stream.

The user must be allowed to see the operation (same selector as the pages and the API);
otherwise the handshake is refused. JSON clients get every event with seq > after, then live
events, and the socket closes after the final one. htmx clients (`format=html`) get the
panel body once (so a reconnect never duplicates lines), then oob fragments per event.
"""

from __future__ import annotations

from urllib.parse import parse_qs

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncJsonWebsocketConsumer

from . import live
from .selectors import operation_events, operation_get

CLOSE_FORBIDDEN = 4403  # not logged in, or the operation is not visible to this user
CLOSE_BAD_REQUEST = 4400


class OperationConsumer(AsyncJsonWebsocketConsumer):
    async def connect(self):
        query = parse_qs(self.scope.get("query_string", b"").decode())
        self.format = "html" if query.get("format", ["json"])[0] == "html" else "json"
        try:
            self.last_seq = int(query.get("after", ["0"])[0])
        except ValueError:
            await self.close(code=CLOSE_BAD_REQUEST)
            return
        operation = await database_sync_to_async(operation_get)(
            user=self.scope.get("user"), pk=self.scope["url_route"]["kwargs"]["pk"])
        if operation is None:
            await self.close(code=CLOSE_FORBIDDEN)
            return
        self.group = live.group_name(operation.pk)
        # Join before reading the replay: an event saved meanwhile arrives on the group later
        # and is dropped by seq if the replay already had it.
        await self.channel_layer.group_add(self.group, self.channel_name)
        await self.accept()
        if self.format == "html":
            html, seq, active = await database_sync_to_async(self._body)(operation)
            await self.send(text_data=html)
            self.last_seq = max(self.last_seq, seq)
            return
        replay, active = await database_sync_to_async(self._replay)(operation)
        for data in replay:
            await self.send_json(data)
            self.last_seq = data["seq"]
        if not active:
            await self.close()

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
        if getattr(self, "group", None):
            await self.channel_layer.group_discard(self.group, self.channel_name)

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
            await self.close()
