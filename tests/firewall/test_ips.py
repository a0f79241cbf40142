"""IPS (Suricata) over the SSH channel, against pvesim's SSH servers: switching IPS edits the guest's
.fw file in pvesim (and only its [OPTIONS] lines), alerts appended to a node's eve.json appear in
the portal within one read, tenants see only their guests' alerts, and without a channel every IPS
call says why it is unavailable."""

from __future__ import annotations

import json

import pytest

from apps.core.models import AuditEntry
from apps.firewall import ips, tasks
from apps.firewall.models import IpsAlert, NodeHost, SshChannel
from apps.proxmox import GuestRef, nodefs
from apps.proxmox import firewall as fw
from tests.conftest import Api

pytestmark = pytest.mark.django_db


def fw_file(pvesim, vmid: int, node: str = "pve1") -> str | None:
    try:
        return pvesim.admin("GET", "/files", node=node, path=f"/etc/pve/firewall/{vmid}.fw")["content"]
    except RuntimeError as exc:
        if "404" in str(exc):
            return None
        raise


@pytest.fixture
def operator_api(operator):
    return Api(operator)


@pytest.fixture
def channel(tenants, pvesim, operator):
    """The cluster's channel as an operator sets it up: a key pair made by the portal, its public
    key installed on the nodes, each node's address (pvesim's listeners), host keys pinned at first use."""
    cluster = tenants["cluster"]
    made = ips.channel_create(user=operator, cluster=cluster)
    pvesim.admin("POST", "/ssh/authorized-keys", key=made.public_key)
    for node, listener in pvesim.ssh.items():
        ips.host_update(user=operator, channel=made, node=node, address=listener["host"], port=listener["port"])
    return made


def test_ips_toggle_edits_only_the_options_of_the_guests_fw_file(tenants, channel, pvesim, pve, acme_api):
    guest = tenants["guests"][100]
    level = fw.Level.of_guest(GuestRef("pve1", "qemu", 100))
    fw.create_rule(pve, level, {"type": "in", "action": "ACCEPT", "macro": "SSH", "comment": "office"})
    fw.set_options(pve, level, enable=1)
    before = fw_file(pvesim, 100)
    assert "IN SSH(ACCEPT) # office" in before and "ips" not in before

    state = acme_api.get(f"/api/v1/guests/{guest.pk}/firewall/ips/")
    assert state["available"] and not state["enabled"] and state["file_exists"] and state["digest"]
    state = acme_api.put(f"/api/v1/guests/{guest.pk}/firewall/ips/",
                         {"enabled": True, "queues": "0:3", "digest": state["digest"]})
    assert state["enabled"] and state["queues"] == "0:3"

    after = fw_file(pvesim, 100)
    assert "ips: 1\n" in after and "ips_queues: 0:3\n" in after
    # everything else as it was: the same lines, only the two added under [OPTIONS]
    assert [line for line in after.splitlines() if not line.startswith("ips")] == before.splitlines()
    # pvesim read the file back: its API shows the change
    assert fw.options(pve, level)[0]["ips"] == 1 and fw.options(pve, level)[0]["ips_queues"] == "0:3"
    assert [r["comment"] for r in fw.rules(pve, level)[0]] == ["office"]

    state = acme_api.put(f"/api/v1/guests/{guest.pk}/firewall/ips/", {"enabled": False})
    assert not state["enabled"] and state["queues"] == "0:3"
    assert "ips: 0\n" in fw_file(pvesim, 100)
    assert acme_api.get(f"/api/v1/guests/{guest.pk}/firewall/ips/")["enabled"] is False

    # host keys pinned at first use, to exactly what the nodes present; every switch audited
    host = NodeHost.objects.get(channel=channel, node="pve1")
    assert host.pinned_how == "tofu" and host.host_key == " ".join(pvesim.ssh["pve1"]["host_key"].split()[:2])
    actions = list(AuditEntry.objects.filter(action__startswith="firewall.ips_").order_by("created")
                   .values_list("action", "result"))
    assert actions == [("firewall.ips_enable", "success"), ("firewall.ips_disable", "success")]


def test_a_guest_without_a_firewall_file_gets_one(tenants, channel, pvesim, acme_api):
    guest = tenants["guests"][101]
    assert fw_file(pvesim, 101) is None
    assert acme_api.get(f"/api/v1/guests/{guest.pk}/firewall/ips/")["file_exists"] is False
    acme_api.put(f"/api/v1/guests/{guest.pk}/firewall/ips/", {"enabled": True})
    assert fw_file(pvesim, 101) == "[OPTIONS]\n\nips: 1\n\n"


def test_a_file_changed_since_it_was_read_is_not_overwritten(tenants, channel, pvesim, pve, acme_api):
    guest = tenants["guests"][100]
    seen = acme_api.get(f"/api/v1/guests/{guest.pk}/firewall/ips/")
    fw.set_options(pve, fw.Level.of_guest(GuestRef("pve1", "qemu", 100)), enable=1)  # someone else, meanwhile
    refused = acme_api.put(f"/api/v1/guests/{guest.pk}/firewall/ips/",
                           {"enabled": True, "digest": seen["digest"]}, expect=409)
    assert "changed since" in refused["detail"]
    assert "ips" not in fw_file(pvesim, 100)
    assert AuditEntry.objects.filter(action="firewall.ips_enable", result="failure").count() == 1


def test_bad_queues_are_a_field_error(tenants, channel, acme_api):
    guest = tenants["guests"][100]
    body = acme_api.put(f"/api/v1/guests/{guest.pk}/firewall/ips/", {"enabled": True, "queues": "3:1"}, expect=400)
    assert "backwards" in json.dumps(body)


def test_a_node_presenting_another_host_key_is_refused_before_login(tenants, channel, pvesim, operator, acme_api):
    ips.host_update(user=operator, channel=channel, node="pve1", host_key=pvesim.ssh["pve2"]["host_key"])
    guest = tenants["guests"][100]
    state = acme_api.get(f"/api/v1/guests/{guest.pk}/firewall/ips/")
    # refused, and said: another key is no reason to try the next node (an unreachable node is)
    assert state["available"] and "another host key" in state["error"] and not state["read_from"]
    with pytest.raises(nodefs.HostKeyMismatch) as caught:
        with ips.node_session(channel, "pve1"):
            pass
    assert pvesim.ssh["pve1"]["fingerprint"] in str(caught.value)
    assert caught.value.actual.split()[1] == pvesim.ssh["pve1"]["host_key"].split()[1]
    refused = acme_api.put(f"/api/v1/guests/{guest.pk}/firewall/ips/", {"enabled": True}, expect=502)
    assert "another host key" in refused["detail"]
    assert fw_file(pvesim, 100) is None or "ips" not in fw_file(pvesim, 100)


def test_a_key_not_installed_is_refused(tenants, channel, pvesim, operator):
    pvesim.admin("DELETE", "/ssh/authorized-keys")
    results = ips.channel_test(user=operator, channel=channel)
    assert set(results) == {"pve1", "pve2", "pve3"}
    assert all("refused the portal's key" in m for m in results.values())
    SshChannel.objects.filter(pk=channel.pk).update()
    channel.refresh_from_db()
    assert "refused the portal's key" in channel.last_error


def alert(pvesim, **params):
    return pvesim.admin("POST", "/suricata/alert", **params)["event"]


@pytest.fixture
def queued(monkeypatch):
    """The reads the periodic task queues (run here by the test itself: there is no worker)."""
    found = []
    monkeypatch.setattr(tasks.ips_alerts_read, "delay", found.append)
    return found


def test_alerts_appear_within_one_read_and_each_tenant_sees_its_own(tenants, channel, pvesim, acme_api, globex_api,
                                                                     operator_api, queued):
    acme_guest, globex_guest = tenants["guests"][100], tenants["guests"][201]
    alert(pvesim, vmid=100, signature="ET SCAN Nmap Scripting Engine", src_ip="203.0.113.7", dest_port=22)
    # by MAC above (pvesim puts the guest's NIC in the event's `ether`), by IP here (201's static address)
    alert(pvesim, node=globex_guest.node.name, signature="ET EXPLOIT attempt", dest_ip="10.20.0.21", severity=1,
          action="blocked")
    alert(pvesim, node="pve2", signature="nobody's", dest_ip="192.0.2.99")
    pvesim.admin("POST", "/suricata/line", node="pve1", text=json.dumps({"event_type": "flow", "src_ip": "1.2.3.4"}))
    pvesim.admin("POST", "/suricata/line", node="pve1", text="{not json")

    assert acme_api.get("/api/v1/firewall/ips/alerts/")["count"] == 0
    assert tasks.ips_alerts_read_all.apply().get() == 1 and queued == [tenants["cluster"].pk]  # the periodic task
    result = ips.alerts_ingest(queued[0])  # what the read it queued does
    assert (result.stored, result.seen, result.unmatched, result.broken) == (3, 3, 1, 1)
    assert result.nodes == {"pve1": "ok", "pve2": "ok", "pve3": "ok"}

    mine = acme_api.get("/api/v1/firewall/ips/alerts/")
    assert [(a["vmid"], a["signature"], a["direction"], a["matched_by"]) for a in mine["results"]] == \
        [(100, "ET SCAN Nmap Scripting Engine", "in", "mac")]
    assert mine["counts"]["total"] == 1 and len(mine["counts"]["x"]) == 24
    theirs = globex_api.get("/api/v1/firewall/ips/alerts/")
    assert [(a["vmid"], a["matched_by"], a["action"], a["severity"]) for a in theirs["results"]] == \
        [(201, "ip", "blocked", 1)]
    everything = operator_api.get("/api/v1/firewall/ips/alerts/")
    assert everything["count"] == 3
    assert [a["signature"] for a in operator_api.get("/api/v1/firewall/ips/alerts/?unmatched=1")["results"]] == \
        ["nobody's"]
    assert acme_api.get(f"/api/v1/guests/{acme_guest.pk}/firewall/ips/alerts/")["count"] == 1
    acme_api.get(f"/api/v1/guests/{globex_guest.pk}/firewall/ips/alerts/", expect=404)

    # read again: nothing new is stored twice; new lines, and those before a rotation, are read
    assert ips.alerts_ingest(tenants["cluster"].pk).stored == 0
    alert(pvesim, vmid=100, signature="before the rotation")
    pvesim.admin("POST", "/suricata/rotate", node="pve1")
    alert(pvesim, vmid=100, signature="after the rotation")
    assert ips.alerts_ingest(tenants["cluster"].pk).stored == 2
    pvesim.admin("POST", "/suricata/rotate", node="pve1", truncate=1)
    alert(pvesim, vmid=100, signature="after copytruncate")
    assert ips.alerts_ingest(tenants["cluster"].pk).stored == 1
    assert [a["signature"] for a in acme_api.get("/api/v1/firewall/ips/alerts/")["results"]] == \
        ["after copytruncate", "after the rotation", "before the rotation", "ET SCAN Nmap Scripting Engine"]
    assert IpsAlert.objects.count() == 6


def test_without_a_channel_ips_says_why(tenants, pvesim, acme_api, operator_api, queued):
    guest = tenants["guests"][100]
    state = acme_api.get(f"/api/v1/guests/{guest.pk}/firewall/ips/")
    assert state["available"] is False and "no SSH channel is configured" in state["reason"]
    refused = acme_api.put(f"/api/v1/guests/{guest.pk}/firewall/ips/", {"enabled": True}, expect=409)
    assert "no SSH channel is configured" in refused["detail"]
    assert tasks.ips_alerts_read_all.apply().get() == 0 and queued == []
    assert ips.alerts_ingest(tenants["cluster"].pk).skipped == "no SSH channel"
    body = operator_api.get(f"/api/v1/clusters/{tenants['cluster'].pk}/firewall/ssh/")
    assert body["configured"] is False and "no SSH channel" in body["reason"]
    assert fw_file(pvesim, 100) is None


def test_the_channel_is_the_operators_and_never_shows_its_private_key(tenants, pvesim, operator_api, acme_api):
    cluster = tenants["cluster"]
    acme_api.get(f"/api/v1/clusters/{cluster.pk}/firewall/ssh/", expect=404)
    acme_api.post(f"/api/v1/clusters/{cluster.pk}/firewall/ssh/", {}, expect=404)
    made = operator_api.post(f"/api/v1/clusters/{cluster.pk}/firewall/ssh/", {}, expect=201)
    assert made["public_key"].startswith("ssh-ed25519 ") and made["key_fingerprint"].startswith("SHA256:")
    assert [n["node"] for n in made["nodes"]] == ["pve1", "pve2", "pve3"]
    channel = SshChannel.objects.get(cluster=cluster)
    assert "PRIVATE KEY" in channel.private_key
    text = json.dumps(made)
    assert "PRIVATE" not in text and channel.private_key.splitlines()[1] not in text
    from django.db import connection

    with connection.cursor() as cursor:  # encrypted at rest
        cursor.execute("SELECT private_key FROM firewall_sshchannel WHERE id = %s", [channel.pk])
        assert "PRIVATE KEY" not in cursor.fetchone()[0]
    operator_api.post(f"/api/v1/clusters/{cluster.pk}/firewall/ssh/", {}, expect=400)

    pvesim.admin("POST", "/ssh/authorized-keys", key=made["public_key"])
    listener = pvesim.ssh["pve3"]
    host = operator_api.patch(f"/api/v1/clusters/{cluster.pk}/firewall/ssh/nodes/pve3/",
                              {"address": listener["host"], "port": listener["port"], "pin": "scan"})
    assert host["host_key_fingerprint"] == listener["fingerprint"] and host["pinned_how"].startswith("read")
    operator_api.patch(f"/api/v1/clusters/{cluster.pk}/firewall/ssh/nodes/pve3/", {"host_key": "nonsense"},
                       expect=400)
    renewed = operator_api.post(f"/api/v1/clusters/{cluster.pk}/firewall/ssh/key/")
    assert renewed["key_fingerprint"] != made["key_fingerprint"]
    results = operator_api.post(f"/api/v1/clusters/{cluster.pk}/firewall/ssh/test/")["nodes"]
    assert "refused the portal's key" in results["pve3"]  # the new key is not installed yet
    operator_api.patch(f"/api/v1/clusters/{cluster.pk}/firewall/ssh/", {"enabled": False})
    assert "switched off" in acme_api.get(f"/api/v1/guests/{tenants['guests'][100].pk}/firewall/ips/")["reason"]
    operator_api.delete(f"/api/v1/clusters/{cluster.pk}/firewall/ssh/")
    assert not SshChannel.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_the_periodic_read_on_a_real_worker_stores_new_alerts(tenants, channel, pvesim, celery_worker, acme_api):
    from tests.fixtures import wait_for

    alert(pvesim, vmid=100, signature="ET POLICY read by the worker")
    tasks.ips_alerts_read_all.delay()  # what beat sends every IPS_ALERTS_INTERVAL seconds
    found = wait_for(lambda: acme_api.get("/api/v1/firewall/ips/alerts/")["results"], timeout=60, interval=0.2)
    assert [a["signature"] for a in found] == ["ET POLICY read by the worker"]
    assert NodeHost.objects.get(channel=channel, node="pve1").eve_offset > 0


def test_a_powered_off_node_is_skipped_for_the_shared_files_and_named_for_its_log(tenants, channel, pvesim,
                                                                                 acme_api):
    guest = tenants["guests"][100]  # on pve1
    pvesim.admin("POST", "/nodes/pve1/power", state="off")
    state = acme_api.put(f"/api/v1/guests/{guest.pk}/firewall/ips/", {"enabled": True})
    assert state["enabled"] and state["read_from"] == "pve2"  # /etc/pve is the cluster's: any node serves it
    assert "ips: 1" in fw_file(pvesim, 100, node="pve2")
    result = ips.alerts_ingest(tenants["cluster"].pk)
    # the powered-off node drops the connection (reset or closed, as the kernel's timing has it)
    assert result.nodes["pve2"] == "ok" and "(node pve1)" in result.nodes["pve1"]
    assert "pve1" in SshChannel.objects.get(pk=channel.pk).last_error
