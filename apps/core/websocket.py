"""Websocket plumbing shared by every consumer: auth, origin check, the generic live consumer."""

from __future__ import annotations

import asyncio
import json
from types import SimpleNamespace
from urllib.parse import parse_qs, urlparse

from asgiref.sync import sync_to_async
from channels.auth import AuthMiddlewareStack
from channels.consumer import get_handler_name
from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncWebsocketConsumer
from channels.routing import URLRouter
from django.conf import settings
from django.http.request import validate_host

from . import live, scoping

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
    """`Authorization: Token <key>` on the handshake logs API clients in (the portal's API tokens:
    scope["auth"] is the token, so the policy acts in its tenant and honours read-only)."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        header = dict(scope.get("headers", [])).get(b"authorization", b"").decode("latin1")
        if header.lower().startswith("token "):
            client = scope.get("client") or (None, None)
            token = await _token_for(header[6:].strip(), client[0])
            if token is not None:
                scope = dict(scope, user=token.user, auth=token)
        return await self.app(scope, receive, send)


@database_sync_to_async
def _token_for(key: str, address: str | None):
    from apps.permissions.auth import find_token, record_use  # permissions builds on core: lazily

    token = find_token(key)
    if token is not None:
        record_use(token, address)
    return token


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
        allowed = await database_sync_to_async(self._allowed)(list(dict.fromkeys(requested)))
        for group in allowed:
            await self.channel_layer.group_add(group, self.channel_name)
            self.groups_joined.append(group)
        # Access changes (membership removed...) make this socket re-check its groups.
        self.access_group = live.access_group(user.pk)
        await self.channel_layer.group_add(self.access_group, self.channel_name)
        await self.accept()
        if self.groups_joined:
            self._closing = asyncio.Event()
            self._presence_task = asyncio.ensure_future(self._keep_presence())
        if self.format == "json":
            denied = [g for g in dict.fromkeys(requested) if g not in self.groups_joined]
            await self.send(json.dumps({"type": "subscribed", "groups": self.groups_joined, "denied": denied}))

    def _allowed(self, groups: list[str]) -> list[str]:
        """The groups of `groups` this socket's user may join, asked as of now (sync code)."""
        from django.contrib.auth import get_user_model

        user = self.scope.get("user")
        if user is not None and user.is_authenticated:  # fresh: is_active, staff, groups may have changed
            user = get_user_model().objects.filter(pk=user.pk).first()
        auth = self.scope.get("auth")
        if auth is not None and hasattr(auth, "still_valid") and not auth.still_valid():
            return []  # the API token it connected with was revoked or has expired
        # The policy sees this connection's session (active tenant) and token, as for a request.
        token = scoping.serving(SimpleNamespace(user=user, auth=self.scope.get("auth"),
                                                session=self.scope.get("session")))
        try:
            return [group for group in groups if live.can_subscribe(user, group)]
        finally:
            scoping.done_serving(token)

    async def live_reauth(self, event):
        """Drop the groups the user may no longer join; close when none is left."""
        still = await database_sync_to_async(self._allowed)(list(self.groups_joined))
        dropped = [g for g in self.groups_joined if g not in still]
        for group in dropped:
            await self.channel_layer.group_discard(group, self.channel_name)
        self.groups_joined = still
        if self.format == "json" and dropped:
            await self.send(json.dumps({"type": "unsubscribed", "groups": dropped}))
        if dropped and not still:
            await self.close(code=4403)

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
        for group in getattr(self, "groups_joined", []) + [g for g in [getattr(self, "access_group", None)] if g]:
            await self.channel_layer.group_discard(group, self.channel_name)

    async def _keep_presence(self):
        """Mark this socket as watching its groups, refreshed while it stays open (see live.presence)."""
        while not self._closing.is_set():
            await sync_to_async(live.presence, thread_sensitive=False)(self.groups_joined, self.channel_name, True)
            try:
                await asyncio.wait_for(self._closing.wait(), live.PRESENCE_REFRESH)
            except asyncio.TimeoutError:
                pass

    async def dispatch(self, message):
        """Channels closes stale database connections before every handler: a hop to the one sync
        thread per message per socket (1,000 viewers of a cluster queued 1,000 hops behind each push).
        These handlers reach the database only through database_sync_to_async, which does that
        itself, so they are called directly."""
        handler = getattr(self, get_handler_name(message), None)
        if handler is None:
            raise ValueError(f"No handler for message type {message['type']}")
        await handler(message)

    async def receive(self, text_data=None, bytes_data=None):
        pass  # read-only stream; actions go through HTTP (CSRF, audit)

    async def live_message(self, event):
        if self.format == "json":
            await self.send(json.dumps({"type": "update", "data": event.get("data"), "html": event.get("html")}))
        elif event.get("html"):
            await self.send(event["html"])
