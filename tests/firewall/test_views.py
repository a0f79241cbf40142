"""Firewall pages: a tenant's guest Firewall tab (add, refused input shown by field, delete asks
first), its effective view answering a packet question, the operators' datacenter and node pages
(404 for tenants), and the security groups page."""

from __future__ import annotations

import pytest
from django.test import Client

from apps.proxmox import GuestRef
from apps.proxmox import firewall as fw

pytestmark = pytest.mark.django_db


def _login(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def test_guest_firewall_tab_for_a_tenant(tenants, pve):
    guest = tenants["guests"][100]
    client = _login(tenants["users"]["acme"])
    url = f"/guests/{guest.pk}/firewall/"
    page = client.get(url)
    assert page.status_code == 200
    html = page.content.decode()
    assert 'aria-current="page">Firewall</a>' in html and "Add rule" in html and "Intrusion prevention" in html
    assert 'id="fw-log"' in html

    refused = client.post(url, {"op": "rule_create", "type": "in", "action": "ACCEPT", "proto": "tcp",
                                "dport": "22:21", "source": "10.0.0.0/40"})
    assert refused.status_code == 400
    text = refused.content.decode()
    assert "nothing was sent to Proxmox" in text and "backwards range" in text and "source" in text
    assert fw.rules(pve, fw.Level.of_guest(GuestRef("pve1", "qemu", 100)))[0] == []

    done = client.post(url, {"op": "rule_create", "type": "in", "action": "ACCEPT", "macro": "SSH",
                             "source": "203.0.113.0/24", "enable": "1"})
    assert done.status_code == 302
    rules = fw.rules(pve, fw.Level.of_guest(GuestRef("pve1", "qemu", 100)))[0]
    assert [(r["macro"], r["source"], int(r["enable"])) for r in rules] == [("SSH", "203.0.113.0/24", 1)]
    html = client.get(url).content.decode()
    assert 'data-confirm="Delete rule 0 (in ACCEPT SSH)' in html  # the delete asks first

    off = client.get(f"/guests/{guest.pk}/firewall/effective/", {"port": "22", "address": "203.0.113.5"})
    assert "firewall is off" in off.content.decode() and 'class="fw-decides"' not in off.content.decode()
    assert client.post(url, {"op": "options", "enable": "1", "policy_in": "DROP"}).status_code == 302
    answer = client.get(f"/guests/{guest.pk}/firewall/effective/",
                        {"direction": "in", "proto": "tcp", "port": "22", "address": "203.0.113.5"})
    assert answer.status_code == 200
    html = answer.content.decode()
    assert 'id="fw-decision"' in html and "ACCEPT" in html
    assert 'class="fw-decides" id="eff-in-2" aria-current="true"' in html

    assert client.post(url, {"op": "rule_delete", "pos": "0"}).status_code == 302
    assert fw.rules(pve, fw.Level.of_guest(GuestRef("pve1", "qemu", 100)))[0] == []


def test_pages_a_tenant_may_not_open(tenants):
    acme = _login(tenants["users"]["acme"])
    cluster, globex_guest = tenants["cluster"], tenants["guests"][103]
    assert acme.get(f"/guests/{globex_guest.pk}/firewall/").status_code == 404
    assert acme.get(f"/guests/{globex_guest.pk}/firewall/effective/").status_code == 404
    assert acme.get(f"/clusters/{cluster.pk}/firewall/").status_code == 404
    assert acme.get(f"/nodes/{tenants['guests'][100].node_id}/firewall/").status_code == 404
    groups = acme.get(f"/clusters/{cluster.pk}/firewall/groups/")
    assert groups.status_code == 200 and "webserver" in groups.content.decode()
    assert 'id="fw-defaults"' in groups.content.decode()  # new guests get the chosen groups
    index = acme.get("/firewall/").content.decode()
    assert "security groups" in index and f"/clusters/{cluster.pk}/firewall/\"" not in index


def test_operator_datacenter_and_node_pages(tenants, client, pve):
    cluster = tenants["cluster"]
    page = client.get(f"/clusters/{cluster.pk}/firewall/")
    assert page.status_code == 200
    html = page.content.decode()
    assert "SSH from the management network" in html and "management" in html and "Save options" in html
    moved = client.post(f"/clusters/{cluster.pk}/firewall/", {"op": "alias_create", "name": "dns1", "cidr": "192.0.2.53"})
    assert moved.status_code == 302
    assert "dns1" in {a["name"] for a in fw.aliases(pve, fw.Level.cluster())}
    bad = client.post(f"/clusters/{cluster.pk}/firewall/", {"op": "alias_create", "name": "dns2", "cidr": "dns.example"})
    assert bad.status_code == 400 and "not an IP address" in bad.content.decode()
    node = tenants["guests"][100].node
    page = client.get(f"/nodes/{node.pk}/firewall/")
    assert page.status_code == 200 and "Firewall log" in page.content.decode()
    assert client.get("/firewall/").status_code == 200


def test_pages_say_when_proxmox_cannot_be_read(tenants, pve):
    """The firewall is read live: with the cluster unreachable the tab, the effective view and the
    security groups page still render and say why (never a server error)."""
    from apps.nodes.models import Cluster

    cluster = tenants["cluster"]
    guest = tenants["guests"][100]
    Cluster.objects.filter(pk=cluster.pk).update(api_url="https://127.0.0.1:9")  # nothing listens there
    client = _login(tenants["users"]["acme"])
    for url in (f"/guests/{guest.pk}/firewall/", f"/guests/{guest.pk}/firewall/effective/",
                f"/clusters/{cluster.pk}/firewall/groups/"):
        page = client.get(url)
        assert page.status_code == 200, url
        assert "The firewall cannot be shown right now" in page.content.decode(), url
