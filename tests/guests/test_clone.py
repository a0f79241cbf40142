"""Clone (linked/full, reserved vmid), convert to template, delete (protection, purge of HA), end to end
against pvesim with a real worker."""

import pytest

from apps.guests.models import Guest, VmidReservation
from apps.guests.services import guest_refresh
from apps.operations.models import Operation

from tests.guests.test_snapshots import done, guest
from tests.fixtures import wait_for, wait_task

pytestmark = pytest.mark.django_db(transaction=True)


def clone(api, g, expect=202, **body):
    return api.post(f"/api/v1/guests/{g.pk}/clone/", body, expect=expect)


def test_linked_clone_of_a_template_reserves_the_vmid_and_shows_the_new_guest(sim_cluster, celery_worker, api, pve):
    template = guest(sim_cluster, 9000)
    op = clone(api, template, name="web-03", pool="acme")
    vmid = Operation.objects.get(pk=op["id"]).task_kwargs["newid"]
    assert op["kind"] == "guest.clone" and f"to {vmid} (web-03, linked)" in op["title"]
    o = done(op)
    assert not VmidReservation.objects.filter(vmid=vmid).exists()  # released once the guest exists
    assert o.result["vmid"] == vmid
    new = Guest.objects.get(cluster=sim_cluster, vmid=vmid)
    assert new.name == "web-03" and new.pool == "acme" and o.result["guest"] == new.pk
    config = pve.get(f"nodes/pve1/qemu/{vmid}/config")
    assert config["scsi0"].startswith(f"ceph-rbd:base-9000-disk-0/vm-{vmid}-disk-0")  # linked to the base volume


def test_full_clone_to_another_node_and_storage_reports_progress(sim_cluster, celery_worker, api, pve):
    template = guest(sim_cluster, 9000)
    o = done(clone(api, template, name="full-copy", full=True, target="pve2", storage="ceph-rbd", newid=777))
    assert any(e.progress and 0 < e.progress < 90 for e in o.events.all())  # percent from the qmclone log
    assert "drive scsi0" in " ".join(e.message for e in o.events.all())
    config = pve.get("nodes/pve2/qemu/777/config")
    assert config["name"] == "full-copy" and "base-" not in config["scsi0"]
    assert Guest.objects.get(cluster=sim_cluster, vmid=777).node.name == "pve2"


def test_clone_input_is_checked_before_proxmox(sim_cluster, api):
    vm, ct = guest(sim_cluster, 104), guest(sim_cluster, 201)
    errors = clone(api, vm, expect=400, full=False, name="bad_name!", newid=100, target="pve9")["errors"]
    assert errors["full"] == ["only templates can be cloned linked; a normal guest is always copied in full"]
    assert errors["name"][0].startswith("a DNS name")
    assert errors["newid"] == ["VMID 100 is already used or reserved"]
    assert errors["target"] == [f"no node 'pve9' in cluster {sim_cluster}"]
    errors = clone(api, ct, expect=400, target="pve1")["errors"]  # CT 201 lives on local-zfs
    assert "its disks are on local storage (local-zfs)" in errors["target"][0]
    errors = clone(api, guest(sim_cluster, 9000), expect=400, storage="ceph-rbd")["errors"]
    assert errors["storage"][0].startswith("a linked clone stays on the template's storage")
    assert not Operation.objects.exists() and not VmidReservation.objects.exists()


def test_failed_clone_is_explained_and_releases_the_vmid(sim_cluster, celery_worker, api, pvesim):
    vm = guest(sim_cluster, 104)
    pvesim.admin("POST", "/faults/task-failure", type="qmclone", message="rbd error: connection timed out")
    o = done(clone(api, vm, name="nope"), status="failed")
    assert o.error == "Could not clone VM 104 (db-01). Proxmox said: rbd error: connection timed out"
    assert not VmidReservation.objects.exists()


def test_convert_to_template(sim_cluster, celery_worker, api, pve):
    vm = guest(sim_cluster, 104)
    op = api.post(f"/api/v1/guests/{vm.pk}/template/", {}, expect=202)
    done(op)
    assert pve.get("nodes/pve3/qemu/104/config")["template"] == 1
    vm.refresh_from_db()
    assert vm.template
    again = api.post(f"/api/v1/guests/{vm.pk}/template/", {}, expect=400)
    assert again["errors"]["non_field_errors"] == [f"VM {vm} already is a template"]
    running = guest(sim_cluster, 102)
    assert "is running; shut it down first" in api.post(
        f"/api/v1/guests/{running.pk}/template/", {}, expect=400)["errors"]["non_field_errors"][0]


def test_delete_refused_while_protected_with_the_reason(sim_cluster, celery_worker, api, pve):
    vm = guest(sim_cluster, 104)
    pve.put("nodes/pve3/qemu/104/config", protection=1)
    guest_refresh(guest=vm)  # the portal knows: refused at once
    body = api.delete(f"/api/v1/guests/{vm.pk}/", expect=409)
    assert body["detail"] == f"Cannot delete VM {vm}: protection is on. Turn it off in the guest's settings first."
    # Proxmox refuses as well when the portal's copy is stale: the worker says why in words.
    Guest.objects.filter(pk=vm.pk).update(config={})
    o = done(api.post(f"/api/v1/guests/{vm.pk}/delete/", {}, expect=202), status="failed")
    assert o.error == ("Could not delete VM 104 (db-01): protection is on; turn it off in the guest's settings "
                       "first. Proxmox said: can't remove VM 104 - protection mode enabled")
    assert Guest.objects.filter(pk=vm.pk).exists()
    assert pve.get("nodes/pve3/qemu/104/config")["name"] == "db-01"


def test_delete_with_purge_removes_the_ha_entry(sim_cluster, celery_worker, api, pve):
    vm = guest(sim_cluster, 100)  # HA-managed (vm:100), running
    wait_task(pve, pve.post("nodes/pve1/qemu/100/status/stop"))
    wait_for(lambda: pve.get("nodes/pve1/qemu/100/status/current")["status"] == "stopped")
    Guest.objects.filter(pk=vm.pk).update(status="stopped")
    body = api.delete(f"/api/v1/guests/{vm.pk}/", expect=409)
    assert "it is managed by HA" in body["detail"]
    o = done(api.delete(f"/api/v1/guests/{vm.pk}/?purge=1", expect=202))
    assert any("removed VM 100 from HA resource configuration" in e.message for e in o.events.all())
    assert "vm:100" not in {r["sid"] for r in pve.get("cluster/ha/resources")}
    assert not Guest.objects.filter(pk=vm.pk).exists()


def test_clone_page_and_delete_confirmation(sim_cluster, celery_worker, client, pve):
    vm = guest(sim_cluster, 104)
    html = client.get(f"/guests/{vm.pk}/clone/").content.decode()
    assert 'id="clone-form"' in html and 'id="delete-form"' in html and "Convert to template" in html
    bad = client.post(f"/guests/{vm.pk}/delete/", {"confirm": "105"}, HTTP_HX_REQUEST="true").content.decode()
    assert "type 104 to confirm the deletion" in bad
    cloned = client.post(f"/guests/{vm.pk}/clone/run/", {"name": "db-02", "target": "pve3", "mode": "full"},
                         HTTP_HX_REQUEST="true").content.decode()
    assert "operation-progress" in cloned
    done({"id": Operation.objects.get(kind="guest.clone").pk})
    gone = client.post(f"/guests/{vm.pk}/delete/", {"confirm": "104"}, HTTP_HX_REQUEST="true").content.decode()
    assert "operation-progress" in gone
    wait_for(lambda: not Guest.objects.filter(pk=vm.pk).exists())


def test_guests_outside_the_callers_scope_are_404_everywhere(sim_cluster, api_for, user, user_client):
    vm = Guest.objects.get(cluster=sim_cluster, vmid=104)
    member = api_for(user)
    member.patch(f"/api/v1/guests/{vm.pk}/config/", {"cores": 2}, expect=404)
    member.get(f"/api/v1/guests/{vm.pk}/snapshots/", expect=404)
    member.post(f"/api/v1/guests/{vm.pk}/snapshots/", {"name": "x1"}, expect=404)
    member.post(f"/api/v1/guests/{vm.pk}/clone/", {}, expect=404)
    member.post(f"/api/v1/guests/{vm.pk}/template/", {}, expect=404)
    member.delete(f"/api/v1/guests/{vm.pk}/", expect=404)
    for url in ("config/", "snapshots/", "clone/"):
        assert user_client.get(f"/guests/{vm.pk}/{url}").status_code == 404
    assert user_client.post(f"/guests/{vm.pk}/delete/", {"confirm": "104"}).status_code == 404
    assert not Operation.objects.exists()
