"""The firewall API against pvesim: a guest's rules (list, create, update, enable, move, delete),
refused input as field errors with Proxmox untouched, tenant scoping (another tenant's guest and
the datacenter are 404, a tenant's groups carry its prefix and cannot be named by another), and
the effective view of a guest with two security groups."""

from __future__ import annotations

import pytest

from apps.proxmox import GuestRef
from apps.proxmox import firewall as fw

pytestmark = pytest.mark.django_db

GUEST_100 = fw.Level.of_guest(GuestRef("pve1", "qemu", 100))


def _rules(pve, level=GUEST_100):
    return fw.rules(pve, level)[0]


def test_a_guest_rule_round_trips_through_the_api(tenants, acme_api, pve):
    url = f"/api/v1/guests/{tenants['guests'][100].pk}/firewall/rules/"
    listed = acme_api.get(url)
    assert listed["count"] == 0  # an empty list carries no digest (Proxmox puts it on each item)
    created = acme_api.post(url, {"type": "in", "action": "ACCEPT", "macro": "ssh", "source": "198.51.100.0/24",
                                  "comment": "admins"}, expect=201)
    assert created["macro"] == "SSH"
    acme_api.post(url, {"type": "in", "action": "DROP", "proto": "tcp", "dport": "23", "enable": False}, expect=201)
    rules = _rules(pve)
    assert [(r["pos"], r["action"], int(r["enable"])) for r in rules] == [(0, "DROP", 0), (1, "ACCEPT", 1)]

    acme_api.put(f"{url}1/", {"type": "in", "action": "ACCEPT", "macro": "SSH", "source": "203.0.113.0/24"})
    assert _rules(pve)[1]["source"] == "203.0.113.0/24" and "comment" not in _rules(pve)[1]
    acme_api.post(f"{url}0/enable/", {"enable": True})
    assert int(_rules(pve)[0]["enable"]) == 1
    acme_api.post(f"{url}0/move/", {"to": 1})
    assert [r["action"] for r in _rules(pve)] == ["ACCEPT", "DROP"]
    acme_api.post(f"{url}1/move/", {"to": 5}, expect=400)
    acme_api.delete(f"{url}1/")
    assert [r["action"] for r in _rules(pve)] == ["ACCEPT"]

    from apps.core.models import AuditEntry
    done = list(AuditEntry.objects.filter(action__startswith="firewall.rule_").values_list("action", "result"))
    assert ("firewall.rule_create", "success") in done and ("firewall.rule_delete", "success") in done
    assert ("firewall.rule_move", "success") in done


def test_bad_rules_are_field_errors_and_never_reach_proxmox(tenants, acme_api, pve):
    url = f"/api/v1/guests/{tenants['guests'][100].pk}/firewall/rules/"
    body = acme_api.post(url, {"type": "in", "action": "ACCEPT", "proto": "tcp", "dport": "80:70,99999",
                               "source": "+nosuchset", "macro": "Nope", "iface": "eth0"}, expect=400)
    assert {"dport", "source", "macro", "iface"} <= set(body["errors"])
    assert "backwards range" in body["errors"]["dport"][0]
    body = acme_api.post(url, {"type": "group", "action": "t999_other"}, expect=400)
    assert "no such security group" in body["errors"]["action"][0]
    assert _rules(pve) == []


def test_another_tenants_guest_and_the_datacenter_are_404(tenants, acme_api, globex_api, api):
    acme_guest, cluster = tenants["guests"][100], tenants["cluster"]
    node = acme_guest.node
    for path in ("rules/", "rules/0/", "options/", "effective/", "ipsets/", "aliases/", "log/"):
        globex_api.get(f"/api/v1/guests/{acme_guest.pk}/firewall/{path}", expect=404 if path != "rules/0/" else 405)
    globex_api.post(f"/api/v1/guests/{acme_guest.pk}/firewall/rules/", {"type": "in", "action": "DROP"}, expect=404)
    globex_api.delete(f"/api/v1/guests/{acme_guest.pk}/firewall/rules/0/", expect=404)
    for who in (acme_api, globex_api):
        who.get(f"/api/v1/clusters/{cluster.pk}/firewall/rules/", expect=404)
        who.get(f"/api/v1/clusters/{cluster.pk}/firewall/options/", expect=404)
        who.get(f"/api/v1/clusters/{cluster.pk}/firewall/aliases/", expect=404)
        who.get(f"/api/v1/nodes/{node.pk}/firewall/rules/", expect=404)
        who.post(f"/api/v1/clusters/{cluster.pk}/firewall/rules/", {"type": "in", "action": "DROP"}, expect=404)
    assert api.get(f"/api/v1/clusters/{cluster.pk}/firewall/rules/")["count"] >= 1  # operators see them
    auditor = type(api)(tenants["users"]["auditor"])
    assert auditor.get(f"/api/v1/nodes/{node.pk}/firewall/options/")["options"] is not None
    auditor.post(f"/api/v1/clusters/{cluster.pk}/firewall/rules/", {"type": "in", "action": "DROP"}, expect=403)


def test_tenant_groups_are_prefixed_and_private(tenants, acme_api, globex_api, api, pve):
    acme, cluster = tenants["acme"], tenants["cluster"]
    groups_url = f"/api/v1/clusters/{cluster.pk}/firewall/groups/"
    created = acme_api.post(groups_url, {"name": "db"}, expect=201)
    assert created["group"] == f"t{acme.pk}_db"
    assert f"t{acme.pk}_db" in {g["group"] for g in fw.groups(pve)}
    acme_api.post(f"{groups_url}t{acme.pk}_db/rules/", {"type": "in", "action": "ACCEPT", "macro": "PostgreSQL"},
                  expect=201)
    # globex sees the shared group, not acme's; may not read, change or name it
    seen = {g["group"] for g in globex_api.get(groups_url)["results"]}
    assert "webserver" in seen and f"t{acme.pk}_db" not in seen
    globex_api.get(f"{groups_url}t{acme.pk}_db/rules/", expect=404)
    globex_api.delete(f"{groups_url}t{acme.pk}_db/", expect=404)
    globex_guest = tenants["guests"][103]
    body = globex_api.post(f"/api/v1/guests/{globex_guest.pk}/firewall/rules/",
                           {"type": "group", "action": f"t{acme.pk}_db"}, expect=400)
    assert "no such security group" in body["errors"]["action"][0]
    # shared groups: usable by tenants, changed only by operators
    globex_api.post(f"/api/v1/guests/{globex_guest.pk}/firewall/rules/", {"type": "group", "action": "webserver"},
                    expect=201)
    globex_api.post(f"{groups_url}webserver/rules/", {"type": "in", "action": "DROP"}, expect=403)
    api.post(groups_url, {"name": f"t{acme.pk}_fake"}, expect=400)  # operators cannot take a tenant's prefix
    # a tenant's IP sets: prefixed, with nomatch entries, invisible to the other tenant
    sets_url = f"/api/v1/clusters/{cluster.pk}/firewall/ipsets/"
    name = acme_api.post(sets_url, {"name": "partners"}, expect=201)["name"]
    assert name == f"t{acme.pk}_partners"
    acme_api.post(f"{sets_url}{name}/", {"cidr": "192.0.2.0/24"}, expect=201)
    acme_api.post(f"{sets_url}{name}/", {"cidr": "192.0.2.7", "nomatch": True}, expect=201)
    acme_api.post(f"{sets_url}{name}/", {"cidr": "192.0.2.300"}, expect=400)
    mine = {s["name"]: s for s in acme_api.get(sets_url)["results"]}
    assert {(e["cidr"], int(e.get("nomatch", 0))) for e in mine[name]["entries"]} == {("192.0.2.0/24", 0), ("192.0.2.7", 1)}
    assert name not in {s["name"] for s in globex_api.get(sets_url)["results"]}
    globex_api.post(f"{sets_url}{name}/", {"cidr": "10.0.0.1"}, expect=404)
    acme_api.delete(f"{sets_url}{name}/192.0.2.7/")
    assert len(fw.ipset_entries(pve, fw.Level.cluster(), name)) == 1


def test_effective_view_of_a_guest_with_two_groups(tenants, acme_api, api, pve):
    """Hand-computed: guest 100 has, top to bottom, group t<acme>_admin (SSH from 203.0.113.0/24,
    then DROP tcp 22), an own rule ACCEPT tcp 8080, and group webserver (HTTP, HTTPS); policy_in DROP."""
    cluster, guest = tenants["cluster"], tenants["guests"][100]
    groups_url = f"/api/v1/clusters/{cluster.pk}/firewall/groups/"
    admin = acme_api.post(groups_url, {"name": "admin"}, expect=201)["group"]
    acme_api.post(f"{groups_url}{admin}/rules/", {"type": "in", "action": "DROP", "proto": "tcp", "dport": "22"},
                  expect=201)
    acme_api.post(f"{groups_url}{admin}/rules/", {"type": "in", "action": "ACCEPT", "macro": "SSH",
                                                  "source": "203.0.113.0/24"}, expect=201)
    acme_api.post(f"{groups_url}{admin}/rules/", {"type": "out", "action": "ACCEPT", "proto": "udp", "dport": "53"},
                  expect=201)
    rules_url = f"/api/v1/guests/{guest.pk}/firewall/rules/"
    acme_api.post(rules_url, {"type": "group", "action": "webserver"}, expect=201)
    acme_api.post(rules_url, {"type": "in", "action": "ACCEPT", "proto": "tcp", "dport": "8080"}, expect=201)
    acme_api.post(rules_url, {"type": "group", "action": admin}, expect=201)
    acme_api.patch(f"/api/v1/guests/{guest.pk}/firewall/options/", {"values": {"enable": "1", "policy_in": "DROP"}})

    view = acme_api.get(f"/api/v1/guests/{guest.pk}/firewall/effective/",
                        {"address": "203.0.113.5", "proto": "tcp", "port": "22"})
    assert view["active"] is True
    inbound = [(r["origin"], r["verdict"], r["rule"].get("macro") or r["rule"].get("dport")) for r in view["in"]]
    assert inbound == [
        ("state", "", None),
        (f"group {admin}", "ACCEPT", "SSH"), (f"group {admin}", "DROP", "22"),
        ("guest", "ACCEPT", "8080"),
        ("group webserver", "ACCEPT", "HTTP"), ("group webserver", "ACCEPT", "HTTPS"),
        ("policy", "DROP", None),
    ]
    assert [(r["origin"], r["verdict"]) for r in view["out"]] == [("state", ""), (f"group {admin}", "ACCEPT"),
                                                                 ("policy", "ACCEPT")]
    assert view["decision"]["verdict"] == "ACCEPT" and view["decision"]["row"] == 2
    assert [r["number"] for r in view["in"] if r["decides"]] == [2]
    other = acme_api.get(f"/api/v1/guests/{guest.pk}/firewall/effective/",
                         {"address": "198.51.100.9", "proto": "tcp", "port": "22"})["decision"]
    assert (other["verdict"], other["row"]) == ("DROP", 3)
    web = acme_api.get(f"/api/v1/guests/{guest.pk}/firewall/effective/",
                       {"address": "198.51.100.9", "proto": "tcp", "port": "443"})["decision"]
    assert (web["verdict"], web["row"]) == ("ACCEPT", 6)
    nothing = acme_api.get(f"/api/v1/guests/{guest.pk}/firewall/effective/",
                           {"address": "198.51.100.9", "proto": "udp", "port": "9"})["decision"]
    assert (nothing["verdict"], nothing["row"]) == ("DROP", 7)
    acme_api.get(f"/api/v1/guests/{guest.pk}/firewall/effective/", {"address": "not-an-ip", "port": "22"}, expect=400)
    # the datacenter's blacklist drops its sources before any guest rule (a tenant sees only that row)
    sets_url = f"/api/v1/clusters/{cluster.pk}/firewall/ipsets/"
    api.post(sets_url, {"name": "blacklist"}, expect=201)
    api.post(f"{sets_url}blacklist/", {"cidr": "198.51.100.0/24"}, expect=201)
    api.post(f"{sets_url}blacklist/", {"cidr": "198.51.100.7", "nomatch": True}, expect=201)
    listed = acme_api.get(f"/api/v1/guests/{guest.pk}/firewall/effective/",
                          {"address": "198.51.100.9", "proto": "tcp", "port": "443"})
    assert listed["in"][0]["origin"] == "datacenter" and (listed["decision"]["verdict"], listed["decision"]["row"]) \
        == ("DROP", 1)
    spared = acme_api.get(f"/api/v1/guests/{guest.pk}/firewall/effective/",
                          {"address": "198.51.100.7", "proto": "tcp", "port": "443"})["decision"]
    assert (spared["verdict"], spared["row"]) == ("ACCEPT", 7)  # nomatch: not in the set, so webserver's HTTPS
    assert listed["out"][0]["origin"] == "state"  # outbound is not filtered by it
    # the datacenter firewall switched off: nothing is filtered, whatever the rules
    api.patch(f"/api/v1/clusters/{cluster.pk}/firewall/options/", {"values": {"enable": "0"}})
    off = acme_api.get(f"/api/v1/guests/{guest.pk}/firewall/effective/",
                       {"address": "198.51.100.9", "proto": "udp", "port": "9"})
    assert off["active"] is False and off["decision"]["verdict"] == "ACCEPT" and "datacenter" in off["reasons"][0]
