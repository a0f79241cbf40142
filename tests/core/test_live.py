"""Live updates over the real Redis channel layer, through the project's ASGI application."""

import json

import pytest
from asgiref.sync import async_to_sync, sync_to_async
from channels.testing import WebsocketCommunicator

from apps.core import live

pytestmark = pytest.mark.django_db(transaction=True)


def session_cookie(client) -> bytes:
    return f"sessionid={client.cookies['sessionid'].value}".encode()


def communicator(path, *, cookie=None, origin=b"http://localhost"):
    from datacenter.asgi import application

    headers = [(b"host", b"localhost")]
    if origin is not None:
        headers.append((b"origin", origin))
    if cookie is not None:
        headers.append((b"cookie", cookie))
    return WebsocketCommunicator(application, path, headers=headers)


def test_can_subscribe_rules(operator, user):
    from django.contrib.auth.models import AnonymousUser

    assert live.can_subscribe(user, f"user-{user.pk}")
    assert not live.can_subscribe(user, f"user-{operator.pk}")
    assert not live.can_subscribe(AnonymousUser(), f"user-{user.pk}")
    assert not live.can_subscribe(user, "nosuchprefix-1")  # unregistered prefixes are closed
    assert not live.can_subscribe(user, "user-1 2")

    live.register_group("broken", lambda u, key: 1 / 0)
    try:
        assert not live.can_subscribe(operator, "broken-1")  # a failing check denies
    finally:
        live._checks.pop("broken")


def test_bad_prefix_is_refused():
    with pytest.raises(ValueError, match="prefix"):
        live.register_group("Bad-Prefix", lambda u, k: True)


def test_json_subscriber_gets_only_allowed_groups(user_client, user, operator):
    async def scenario():
        ws = communicator(f"/ws/live/?format=json&groups=user-{user.pk},user-{operator.pk}",
                          cookie=session_cookie(user_client))
        connected, _ = await ws.connect()
        assert connected
        hello = json.loads(await ws.receive_from())
        assert hello == {"type": "subscribed", "groups": [f"user-{user.pk}"], "denied": [f"user-{operator.pk}"]}

        assert await live.apush(f"user-{operator.pk}", data={"secret": 1})
        assert await ws.receive_nothing(timeout=0.3)  # not subscribed: nothing arrives

        assert await sync_to_async(live.push)(f"user-{user.pk}", data={"n": 1}, html="<p id='x'>1</p>")
        update = json.loads(await ws.receive_from())
        assert update == {"type": "update", "data": {"n": 1}, "html": "<p id='x'>1</p>"}
        await ws.disconnect()

    async_to_sync(scenario)()


def test_html_subscriber_receives_fragments(user_client, user):
    async def scenario():
        ws = communicator(f"/ws/live/?groups=user-{user.pk}", cookie=session_cookie(user_client))
        assert (await ws.connect())[0]
        await live.apush(f"user-{user.pk}", data={"only": "data"})  # nothing to swap: not sent
        fragment = '<div id="notice" hx-swap-oob="true">done</div>'
        await live.apush(f"user-{user.pk}", html=fragment)
        assert await ws.receive_from() == fragment
        await ws.disconnect()

    async_to_sync(scenario)()


def test_anonymous_is_closed():
    async def scenario():
        ws = communicator("/ws/live/?groups=user-1")
        connected, code = await ws.connect()
        assert not connected and code == 4401

    async_to_sync(scenario)()


def test_foreign_origin_is_refused(user_client, user):
    async def scenario():
        ws = communicator(f"/ws/live/?groups=user-{user.pk}", cookie=session_cookie(user_client),
                          origin=b"https://evil.example")
        connected, code = await ws.connect()
        assert not connected and code == 4403

    async_to_sync(scenario)()


def test_token_authenticates_api_clients_without_origin(user):
    from apps.permissions.models import ApiToken

    _token, secret = ApiToken.objects.create(user, name="ws client")

    async def scenario():
        from datacenter.asgi import application

        ws = WebsocketCommunicator(application, f"/ws/live/?format=json&groups=user-{user.pk}",
                                   headers=[(b"authorization", f"Token {secret}".encode())])
        assert (await ws.connect())[0]
        assert json.loads(await ws.receive_from())["groups"] == [f"user-{user.pk}"]
        await ws.disconnect()

    async_to_sync(scenario)()


def test_push_without_redis_reports_failure(settings):
    settings.CHANNEL_LAYERS = {"default": {"BACKEND": "channels_redis.core.RedisChannelLayer",
                                           "CONFIG": {"hosts": ["redis://127.0.0.1:1/0"]}}}
    from channels.layers import channel_layers

    channel_layers.backends.pop("default", None)
    try:
        assert live.push("user-1", data={}) is False
    finally:
        channel_layers.backends.pop("default", None)
