"""The HA panel of a guest's page follows the guest's HA state without a reload: the sync pushes it
to `haguest-<pk>.<audience>`, rendered once per audience (operators with the HA actions, auditors
read-only, the guest's tenant without the placement), through the real ASGI app and Redis."""

import asyncio
import json
import re

import pytest
from asgiref.sync import async_to_sync, sync_to_async
from channels.testing import WebsocketCommunicator
from django.test import Client

from apps.core import live
from apps.guests.models import Guest
from apps.nodes import presence
from apps.proxmox import ha as pve_ha

from .conftest import sync, sync_until

pytestmark = pytest.mark.django_db(transaction=True)


def browser_for(user) -> Client:
    browser = Client()
    browser.force_login(user)
    return browser


def socket(browser: Client, group: str) -> WebsocketCommunicator:
    from datacenter.asgi import application

    cookie = f"sessionid={browser.cookies['sessionid'].value}".encode()
    return WebsocketCommunicator(application, f"/ws/live/?format=json&groups={group}",
                                 headers=[(b"host", b"localhost"), (b"origin", b"http://localhost"), (b"cookie", cookie)])


async def pushed_until(ws, words: str, timeout: float = 30) -> str:
    """The first pushed panel that contains `words` (the sync may push steps before it)."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        html = json.loads(await ws.receive_from(timeout=max(deadline - asyncio.get_running_loop().time(), 0.1)))["html"]
        if words in html:
            return html


async def watched(group: str) -> None:
    """Until the socket's presence is counted (the consumer marks it just after joining)."""
    for _ in range(200):
        if await sync_to_async(presence.watcher_count)(group):
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"{group} never counted as watched")


def page_groups(browser: Client, guest) -> list[str]:
    html = browser.get(guest.get_absolute_url()).content.decode()
    return re.search(r'data-live-groups="([^"]*)"', html).group(1).split(",")


@pytest.fixture
def auditor(django_user_model):
    from django.contrib.auth.models import Group

    from apps.permissions.models import AUDITORS_GROUP

    user = django_user_model.objects.create_user(username="auditor", password="auditor-pass-1234")
    user.groups.add(Group.objects.get_or_create(name=AUDITORS_GROUP)[0])
    return user


def test_guest_ha_panel_is_pushed_to_each_audience(sim_cluster, tenants, operator, auditor, pve):
    vm = Guest.objects.get(cluster=sim_cluster, vmid=100)  # acme's, under HA (started on pve1)
    people = {"manage": browser_for(operator), "view": browser_for(auditor), "tenant": browser_for(tenants["acme"])}
    for audience, browser in people.items():  # each page joins its own audience's group
        assert f"haguest-{vm.pk}.{audience}" in page_groups(browser, vm), audience
    # ... and may join no other: the group check is the audience rule itself.
    assert not live.can_subscribe(auditor, f"haguest-{vm.pk}.manage")
    assert not live.can_subscribe(tenants["acme"], f"haguest-{vm.pk}.view")
    assert not any(live.can_subscribe(tenants["globex"], f"haguest-{vm.pk}.{a}") for a in ("manage", "view", "tenant"))

    def change():
        from apps.ha.models import HaResource

        pve_ha.resource_update(pve, "vm:100", state="stopped", max_restart=3)
        # The CRM takes the request at its next round: the sync sees it then (and pushes each step).
        sync_until(sim_cluster, lambda: HaResource.objects.filter(sid="vm:100", request_state="stopped",
                                                                  state="stopped").exists())

    async def scenario():
        sockets = {a: socket(b, f"haguest-{vm.pk}.{a}") for a, b in people.items()}
        for audience, ws in sockets.items():
            assert (await ws.connect())[0]
            hello = json.loads(await ws.receive_from())
            assert hello["groups"] == [f"haguest-{vm.pk}.{audience}"], hello
        for audience in sockets:  # the push renders only for panels someone has open
            await watched(f"haguest-{vm.pk}.{audience}")
        await sync_to_async(sync)(sim_cluster)  # nothing changed: nothing pushed
        for ws in sockets.values():
            assert await ws.receive_nothing(timeout=0.3)
        await sync_to_async(change)()
        panels = {}
        for audience, ws in sockets.items():
            panels[audience] = await pushed_until(ws, ">stopped</span> <span class=\"muted\">asked: stopped")
            await ws.disconnect()
        return panels

    panels = async_to_sync(scenario)()
    for audience, html in panels.items():
        assert f'id="guest-{vm.pk}-ha"' in html and 'hx-swap-oob="true"' in html, audience
        assert f'data-ha-audience="{audience}"' in html and "asked: stopped" in html, audience
    assert "Change HA options" in panels["manage"] and "Remove from HA" in panels["manage"]
    assert 'name="max_restart" value="3"' in panels["manage"]  # the form holds the new options
    assert "If pve1 fails" in panels["view"] and "Change HA options" not in panels["view"]
    assert "If pve1 fails" not in panels["tenant"] and "Change HA options" not in panels["tenant"]
    assert "priority" not in panels["tenant"]  # the placement names other guests' load: not a tenant's


def test_a_guest_put_under_ha_gets_its_panel_live(sim_cluster, operator, pve):
    guest = Guest.objects.get(cluster=sim_cluster, vmid=101)
    browser = browser_for(operator)
    assert "Not under HA" in browser.get(guest.get_absolute_url()).content.decode()

    async def scenario():
        ws = socket(browser, f"haguest-{guest.pk}.manage")
        assert (await ws.connect())[0]
        await ws.receive_from()
        await watched(f"haguest-{guest.pk}.manage")

        def put_under_ha():
            from apps.ha.models import HaResource

            pve_ha.resource_add(pve, "vm:101", state="started")
            sync_until(sim_cluster, lambda: HaResource.objects.filter(sid="vm:101").exists())

        await sync_to_async(put_under_ha)()
        html = await pushed_until(ws, "vm:101")
        await ws.disconnect()
        return html

    html = async_to_sync(scenario)()
    assert "vm:101" in html and "Not under HA" not in html and "Remove from HA" in html
