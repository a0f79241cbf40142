"""Power actions end to end: API 202 -> Celery worker -> pvesim task -> events -> guest re-read."""

import pytest
import requests

from apps.guests.models import Guest
from apps.operations.models import Operation

from tests.fixtures import wait_for

pytestmark = pytest.mark.django_db(transaction=True)


def root_put(pvesim, path, **data):
    """PUT as root@pam with a ticket (only root may set `lock`; our token is not root)."""
    session = requests.Session()
    ticket = session.post(f"{pvesim.url}/api2/json/access/ticket",
                          data={"username": "root@pam", "password": pvesim.root_password},
                          verify=pvesim.cert).json()["data"]
    session.cookies.set("PVEAuthCookie", ticket["ticket"])
    response = session.put(f"{pvesim.url}/api2/json/{path}", data=data,
                           headers={"CSRFPreventionToken": ticket["CSRFPreventionToken"]}, verify=pvesim.cert)
    assert response.status_code == 200, response.text


def guest(cluster, vmid):
    return Guest.objects.get(cluster=cluster, vmid=vmid)


def final(op_id):
    """The operation once finished and its closing event saved (it is written just after the status)."""
    o = Operation.objects.get(pk=op_id)
    if o.is_active or (o.status == "succeeded" and not o.events.filter(message__startswith="Succeeded").exists()):
        return None
    return o


def run(api, cluster, vmid, action, expect_status, **body):
    op = api.post(f"/api/v1/guests/{guest(cluster, vmid).pk}/{action}/", body, expect=202)
    assert op["status"] == "pending" and op["kind"] == f"guest.{action}"
    done = wait_for(lambda: final(op["id"]))
    assert done.status == expect_status, (done.error, [e.message for e in done.events.order_by("seq")])
    return done


@pytest.mark.sparse  # the task's exit status comes from its log when Proxmox leaves it out
def test_start_stopped_vm_then_guest_row_shows_running(sim_cluster, celery_worker, api):
    op = run(api, sim_cluster, 104, "start", "succeeded")
    assert op.upids and ":qmstart:104:" in op.upids[0]
    assert [e.message for e in op.events.order_by("seq")][-1] == "Succeeded"
    assert guest(sim_cluster, 104).status == "running"


@pytest.mark.sparse  # the task's exit status comes from its log when Proxmox leaves it out
def test_start_running_vm_fails_in_users_words_with_proxmox_text(sim_cluster, celery_worker, api):
    vm = guest(sim_cluster, 102)  # named "VM 102 (name)", or "VM 102" where Proxmox sent no name (sparse)
    op = run(api, sim_cluster, 102, "start", "failed")
    assert op.error == f"Could not start VM {vm}: it is already running. Proxmox said: VM 102 already running"


def test_locked_guest_names_the_lock(sim_cluster, celery_worker, api, pvesim):
    root_put(pvesim, "nodes/pve3/qemu/104/config", lock="backup")
    op = run(api, sim_cluster, 104, "start", "failed")
    assert "it is locked (backup: a backup is running)" in op.error
    assert op.error.endswith("Proxmox said: VM is locked (backup)")


def test_offline_node_is_named(sim_cluster, celery_worker, api, pvesim):
    pvesim.admin("POST", "/nodes/pve3/power", state="off")
    op = run(api, sim_cluster, 104, "start", "failed")
    assert "node pve3 is offline or unreachable" in op.error and "No route to host" in op.error


def test_no_quorum_is_explained(sim_cluster, celery_worker, api, pvesim):
    pvesim.admin("POST", "/nodes/pve1/partition", partitioned=True)
    op = run(api, sim_cluster, 102, "stop", "failed")
    assert "the cluster has no quorum" in op.error and "cluster not ready - no quorum?" in op.error


def test_shutdown_that_times_out_is_followed_by_a_hard_stop(sim_cluster, celery_worker, api, pve):
    pve.put("nodes/pve1/qemu/102/config", acpi=0)  # the guest ignores the ACPI power button
    op = run(api, sim_cluster, 102, "shutdown", "succeeded", timeout=5)
    kinds = [u.split(":")[5] for u in op.upids]
    assert kinds == ["qmshutdown", "qmstop"]
    assert any("stopping it hard" in e.message and e.level == "warning" for e in op.events.all())
    assert guest(sim_cluster, 102).status == "stopped"


def test_bulk_action_reports_each_guests_result(sim_cluster, celery_worker, api):
    ct = guest(sim_cluster, 200)
    ids = [guest(sim_cluster, 104).pk, guest(sim_cluster, 102).pk, ct.pk, 999999]
    results = api.post("/api/v1/guests/bulk/", {"action": "reset", "ids": ids}, expect=202)
    by_id = {r["guest"]: r for r in results}
    assert by_id[999999] == {"guest": 999999, "operation": None, "error": "not found"}
    assert by_id[ct.pk]["operation"] is None and "containers cannot be reset" in by_id[ct.pk]["error"]
    ops = {pk: by_id[pk]["operation"]["id"] for pk in ids[:2]}
    done = {pk: wait_for(lambda i=i: final(i)) for pk, i in ops.items()}
    assert done[ids[1]].status == "succeeded"  # running VM 102 resets
    assert done[ids[0]].status == "failed" and "it is not running" in done[ids[0]].error
