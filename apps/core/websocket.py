"""Websocket plumbing shared by every consumer: auth, origin check, the generic live consumer."""

from __future__ import annotations

import asyncio
import json
from urllib.parse import parse_qs, urlparse

from asgiref.sync import sync_to_async
from channels.auth import AuthMiddlewareStack
from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncWebsocketConsumer
from channels.routing import URLRouter
from django.conf import settings
from django.http.request import validate_host

from . import live

MAX_GROUPS = 50


class OriginCheckMiddleware:
    """Refuse handshakes whose Origin is not one of ALLOWED_HOSTS (cross-site websocket hijacking).

    Browsers always send Origin on websockets, so a missing Origin means a non-browser client
    (API tools), which cannot ride a victim's cookies."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        origin = dict(scope.get("headers", [])).get(b"origin")
        if origin is not None:
            host = urlparse(origin.decode("latin1")).hostname or ""
            if not validate_host(host, settings.ALLOWED_HOSTS):
                await send({"type": "websocket.close", "code": 4403})
                return
        return await self.app(scope, receive, send)


class TokenAuthMiddleware:
    """`Authorization: Token <key>` on the handshake logs API clients in (DRF authtoken)."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        header = dict(scope.get("headers", [])).get(b"authorization", b"").decode("latin1")
        if header.lower().startswith("token "):
            user = await _user_for_token(header[6:].strip())
            if user is not None:
                scope = dict(scope, user=user)
        return await self.app(scope, receive, send)


@database_sync_to_async
def _user_for_token(key: str):
    from rest_framework.authtoken.models import Token

    token = Token.objects.select_related("user").filter(key=key).first()
    return token.user if token is not None and token.user.is_active else None


def websocket_application(urlpatterns):
    """The websocket side of asgi.py: origin check, session auth, token auth, then the routes."""
    return OriginCheckMiddleware(AuthMiddlewareStack(TokenAuthMiddleware(URLRouter(urlpatterns))))


def query_param(scope, name: str, default: str = "") -> str:
    values = parse_qs(scope.get("query_string", b"").decode("latin1")).get(name)
    return values[0] if values else default


class LiveConsumer(AsyncWebsocketConsumer):
    """`/ws/live/?groups=a-1,b-2[&format=json]`: joins the groups the user may see and forwards
    their pushes: raw HTML for htmx's ws extension (default), or JSON with `format=json`."""

    async def connect(self):
        user = self.scope.get("user")
        if user is None or not user.is_authenticated:
            await self.close(code=4401)
            return
        self.format = query_param(self.scope, "format", "html")
        requested = [g for g in query_param(self.scope, "groups").split(",") if g][:MAX_GROUPS]
        self.groups_joined = []
        for group in dict.fromkeys(requested):
            if await database_sync_to_async(live.can_subscribe)(user, group):
                await self.channel_layer.group_add(group, self.channel_name)
                self.groups_joined.append(group)
        await self.accept()
        if self.groups_joined:
            self._closing = asyncio.Event()
            self._presence_task = asyncio.ensure_future(self._keep_presence())
        if self.format == "json":
            denied = [g for g in dict.fromkeys(requested) if g not in self.groups_joined]
            await self.send(json.dumps({"type": "subscribed", "groups": self.groups_joined, "denied": denied}))

    async def __call__(self, scope, receive, send):
        try:
            await super().__call__(scope, receive, send)
        finally:  # also when the consumer dies without a disconnect (e.g. channel layer error)
            await self._leave_presence()

    async def _leave_presence(self):
        task = getattr(self, "_presence_task", None)
        if task is None:
            return
        self._presence_task = None
        # Let an in-flight refresh finish first, or it could re-add us after we leave.
        self._closing.set()
        await task
        await sync_to_async(live.presence, thread_sensitive=False)(self.groups_joined, self.channel_name, False)

    async def disconnect(self, code):
        await self._leave_presence()
        for group in getattr(self, "groups_joined", []):
            await self.channel_layer.group_discard(group, self.channel_name)

    async def _keep_presence(self):
        """Mark this socket as watching its groups, refreshed while it stays open (see live.presence)."""
        while not self._closing.is_set():
            await sync_to_async(live.presence, thread_sensitive=False)(self.groups_joined, self.channel_name, True)
            try:
                await asyncio.wait_for(self._closing.wait(), live.PRESENCE_REFRESH)
            except asyncio.TimeoutError:
                pass

    async def receive(self, text_data=None, bytes_data=None):
        pass  # read-only stream; actions go through HTTP (CSRF, audit)

    async def live_message(self, event):
        if self.format == "json":
            await self.send(json.dumps({"type": "update", "data": event.get("data"), "html": event.get("html")}))
        elif event.get("html"):
            await self.send(event["html"])
