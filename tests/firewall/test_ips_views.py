"""IPS pages: the guest's IPS card (unavailable with the reason, or the switch and the alerts), the
alerts page scoped per tenant, and the operators' SSH channel page."""

from __future__ import annotations

import pytest
from django.test import Client

from apps.firewall import ips
from apps.firewall.models import SshChannel
from tests.firewall.test_ips import alert, channel, fw_file  # noqa: F401 - fixtures and helpers

pytestmark = pytest.mark.django_db


def login(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def test_without_a_channel_the_ips_controls_are_disabled_and_say_why(tenants):
    guest = tenants["guests"][100]
    page = login(tenants["users"]["acme"]).get(f"/guests/{guest.pk}/firewall/")
    html = page.content.decode()
    assert page.status_code == 200 and 'id="fw-ips-unavailable"' in html
    assert "no SSH channel is configured for cluster sim" in html
    assert 'disabled title="Proxmox has no API for IPS' in html and "Set up the SSH channel" not in html
    refused = login(tenants["users"]["acme"]).post(f"/guests/{guest.pk}/firewall/", {"op": "ips", "enabled": "1"})
    assert refused.status_code == 409 and "no SSH channel is configured" in refused.content.decode()


def test_a_member_switches_ips_on_from_the_guest_page(tenants, channel, pvesim):  # noqa: F811
    guest = tenants["guests"][100]
    member = login(tenants["users"]["acme"])
    html = member.get(f"/guests/{guest.pk}/firewall/").content.decode()
    assert 'id="fw-ips-state">off<' in html and "Switch IPS on" in html
    done = member.post(f"/guests/{guest.pk}/firewall/", {"op": "ips", "enabled": "1", "queues": "0"}, follow=True)
    assert "IPS on for 100 (web-01) (queues 0)." in done.content.decode()
    assert "ips: 1\nips_queues: 0\n" in fw_file(pvesim, 100)
    bad = member.post(f"/guests/{guest.pk}/firewall/", {"op": "ips", "enabled": "0", "queues": "x"})
    assert bad.status_code == 400 and "a queue number (0) or a range (0:3)" in bad.content.decode()
    # an auditor reads the state, and has no switch
    html = login(tenants["users"]["auditor"]).get(f"/guests/{guest.pk}/firewall/").content.decode()
    assert 'id="fw-ips-state">on<' in html and 'id="fw-ips-form"' not in html


def test_alerts_on_the_guest_page_and_the_alerts_page_are_the_tenants_own(tenants, channel, pvesim):  # noqa: F811
    alert(pvesim, vmid=100, signature="ET SCAN acme's")
    alert(pvesim, vmid=103, signature="ET SCAN globex's")
    assert ips.alerts_ingest(tenants["cluster"].pk).stored == 2
    acme, globex = login(tenants["users"]["acme"]), login(tenants["users"]["globex"])
    html = acme.get(f"/guests/{tenants['guests'][100].pk}/firewall/").content.decode()
    assert "ET SCAN acme&#x27;s" in html and "1 in the last 24 hours" in html and "data-chart=" in html
    fragment = acme.get(f"/guests/{tenants['guests'][100].pk}/firewall/ips/alerts/").content.decode()
    assert "ET SCAN acme&#x27;s" in fragment
    assert acme.get(f"/guests/{tenants['guests'][103].pk}/firewall/ips/alerts/").status_code == 404
    mine = acme.get("/firewall/ips/").content.decode()
    assert "ET SCAN acme&#x27;s" in mine and "globex" not in mine
    assert "ET SCAN globex&#x27;s" in globex.get("/firewall/ips/").content.decode()


def test_the_channel_page_is_the_operators(tenants, pvesim, client):
    cluster = tenants["cluster"]
    assert login(tenants["users"]["acme"]).get(f"/clusters/{cluster.pk}/firewall/ssh/").status_code == 404
    assert login(tenants["users"]["auditor"]).post(f"/clusters/{cluster.pk}/firewall/ssh/",
                                                   {"op": "create"}).status_code == 403
    page = client.get(f"/clusters/{cluster.pk}/firewall/ssh/").content.decode()
    assert "no SSH channel is configured" in page and "Create the channel" in page
    created = client.post(f"/clusters/{cluster.pk}/firewall/ssh/", {"op": "create", "username": "root", "port": "22",
                                                                   "trust_on_first_use": "1"}, follow=True)
    channel = SshChannel.objects.get(cluster=cluster)
    html = created.content.decode()
    assert channel.public_key in html and "PRIVATE" not in html and 'data-confirm-title="Remove the SSH channel' in html
    pvesim.admin("POST", "/ssh/authorized-keys", key=channel.public_key)
    listener = pvesim.ssh["pve1"]
    client.post(f"/clusters/{cluster.pk}/firewall/ssh/", {"op": "host", "node": "pve1", "address": listener["host"],
                                                         "port": listener["port"]})
    bad = client.post(f"/clusters/{cluster.pk}/firewall/ssh/", {"op": "host", "node": "pve1", "port": "70000"})
    assert bad.status_code == 400 and "a port number, 1-65535" in bad.content.decode()
    pinned = client.post(f"/clusters/{cluster.pk}/firewall/ssh/", {"op": "scan", "node": "pve1"}, follow=True)
    assert f"Host key of pve1 pinned: {listener['fingerprint']}." in pinned.content.decode()
    tested = client.post(f"/clusters/{cluster.pk}/firewall/ssh/", {"op": "test"}).content.decode()
    assert "<strong>pve1</strong>: <span class=\"fw-accept\">logged in" in tested
