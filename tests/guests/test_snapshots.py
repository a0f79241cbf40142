"""Snapshots end to end: API/page -> operation -> worker -> pvesim task -> targeted re-read -> tree."""

import pytest

from apps.guests.actions.snapshots import snapshot_tree
from apps.guests.models import Guest, Snapshot
from apps.guests.services import guest_refresh
from apps.operations.models import Operation

from tests.guests.test_power import root_put
from tests.fixtures import wait_for

pytestmark = pytest.mark.django_db(transaction=True)


def guest(cluster, vmid) -> Guest:
    g = Guest.objects.select_related("node", "cluster").get(cluster=cluster, vmid=vmid)
    guest_refresh(guest=g)
    g.refresh_from_db()
    return g


def final(op_id):
    o = Operation.objects.get(pk=op_id)
    if o.is_active or (o.status == "succeeded" and not o.events.filter(message__startswith="Succeeded").exists()):
        return None
    return o


def done(op, status="succeeded") -> Operation:
    o = wait_for(lambda: final(op["id"]))
    assert o.status == status, (o.error, [e.message for e in o.events.order_by("seq")])
    return o


def take(api, g, name, expect=202, **body):
    return api.post(f"/api/v1/guests/{g.pk}/snapshots/", {"name": name, **body}, expect=expect)


def pve_snapshots(pve, g) -> dict:
    return {s["name"]: s for s in pve.get(f"nodes/{g.node.name}/{g.type}/{g.vmid}/snapshot")}


def test_take_with_ram_state_lists_it_and_marks_you_are_here(sim_cluster, celery_worker, api, pve):
    vm = guest(sim_cluster, 100)  # running
    op = take(api, vm, "before-upgrade", description="pre 2.0", vmstate=True)
    assert op["kind"] == "guest.snapshot"
    o = done(op)
    assert any(":qmsnapshot:100:" in u for u in o.upids)
    assert any("saving VM state and RAM" in e.message for e in o.events.all())
    on_pve = pve_snapshots(pve, vm)
    assert on_pve["before-upgrade"]["vmstate"] == 1 and on_pve["current"]["parent"] == "before-upgrade"
    body = api.get(f"/api/v1/guests/{vm.pk}/snapshots/")
    assert body["current_parent"] == "before-upgrade"
    assert [(s["name"], s["description"], s["vmstate"]) for s in body["results"]] == [
        ("before-upgrade", "pre 2.0", True)]


def test_tree_rollback_and_delete(sim_cluster, celery_worker, api, pve):
    vm = guest(sim_cluster, 104)  # stopped
    done(take(api, vm, "base"))
    done(take(api, vm, "app-1"))
    rollback = api.post(f"/api/v1/guests/{vm.pk}/snapshots/base/rollback/", {}, expect=202)
    assert rollback["kind"] == "guest.rollback"
    done(rollback)
    assert pve_snapshots(pve, vm)["current"]["parent"] == "base"
    done(take(api, vm, "app-2"))
    vm.refresh_from_db()
    tree = [("You are here" if r["current"] else r["snapshot"].name, r["depth"]) for r in snapshot_tree(vm)]
    assert tree == [("base", 0), ("app-1", 1), ("app-2", 1), ("You are here", 2)]
    deleted = api.delete(f"/api/v1/guests/{vm.pk}/snapshots/app-1/", expect=202)
    assert deleted["kind"] == "guest.snapshot_delete"
    done(deleted)
    assert "app-1" not in pve_snapshots(pve, vm)
    assert set(Snapshot.objects.filter(guest=vm).values_list("name", flat=True)) == {"base", "app-2"}


def test_names_and_ram_state_are_checked_before_proxmox(sim_cluster, api):
    vm, ct = guest(sim_cluster, 104), guest(sim_cluster, 200)
    for name, reason in [("1st", "is not a valid snapshot name"), ("a", "is not a valid snapshot name"),
                         ("x" * 41, "at most 40 characters"), ("has space", "is not a valid snapshot name"),
                         ("current", "reserved name"), ("Pending", "reserved name")]:
        errors = take(api, vm, name, expect=400)["errors"]
        assert reason in errors["name"][0], (name, errors)
    assert take(api, vm, "ok", expect=400, vmstate=True)["errors"]["vmstate"] == [
        "the VM is not running, so there is no RAM state to save"]
    assert take(api, ct, "ok", expect=400, vmstate=True)["errors"]["vmstate"] == [
        "containers have no RAM state to save"]
    assert api.post(f"/api/v1/guests/{vm.pk}/snapshots/nope/rollback/", {}, expect=400)["errors"]["name"] == [
        f"VM {vm} has no snapshot 'nope' (as last read)"]
    assert not Operation.objects.exists()


def test_duplicate_name_is_a_field_error(sim_cluster, celery_worker, api):
    ct = guest(sim_cluster, 200)
    done(take(api, ct, "daily"))
    assert take(api, ct, "daily", expect=400)["errors"]["name"] == ["a snapshot named 'daily' already exists"]


def test_snapshot_of_a_locked_guest_says_which_lock(sim_cluster, celery_worker, api, pvesim):
    vm = guest(sim_cluster, 104)
    root_put(pvesim, "nodes/pve3/qemu/104/config", lock="snapshot")
    o = done(take(api, vm, "blocked"), status="failed")
    assert o.error == ("Could not take a snapshot of VM 104 (db-01): it is locked (snapshot: a snapshot is being "
                       "taken). Proxmox said: VM is locked (snapshot)")
    vm.refresh_from_db()
    assert vm.lock == "snapshot"  # the failure re-read the guest, so the page shows the lock


def test_injected_task_failure_is_shown(sim_cluster, celery_worker, api, pvesim):
    vm = guest(sim_cluster, 104)
    pvesim.admin("POST", "/faults/task-failure", type="qmsnapshot", message="zfs error: out of space")
    o = done(take(api, vm, "doomed"), status="failed")
    assert o.error == "Could not take a snapshot of VM 104 (db-01). Proxmox said: zfs error: out of space"
    assert not Snapshot.objects.filter(guest=vm, name="doomed").exists()


def test_page_take_form_and_actions(sim_cluster, celery_worker, client):
    vm = guest(sim_cluster, 104)
    html = client.get(f"/guests/{vm.pk}/snapshots/").content.decode()
    assert f'id="guest-{vm.pk}-snapshots"' in html and "You are here" in html and 'name="vmstate"' in html
    bad = client.post(f"/guests/{vm.pk}/snapshots/", {"name": "9lives"}, HTTP_HX_REQUEST="true").content.decode()
    assert "is not a valid snapshot name" in bad and 'id="snapshot-operation"' not in bad
    ok = client.post(f"/guests/{vm.pk}/snapshots/", {"name": "from-page", "description": "hi"},
                     HTTP_HX_REQUEST="true").content.decode()
    assert 'id="snapshot-operation" hx-swap-oob="true"' in ok and "operation-progress" in ok
    op = Operation.objects.get(kind="guest.snapshot")
    wait_for(lambda: final(op.pk))
    tree = client.get(f"/guests/{vm.pk}/snapshots/tree/", HTTP_HX_REQUEST="true").content.decode()
    assert 'data-snapshot="from-page"' in tree
    rolled = client.post(f"/guests/{vm.pk}/snapshots/from-page/rollback/", HTTP_HX_REQUEST="true").content.decode()
    assert "operation-progress" in rolled
    missing = client.post(f"/guests/{vm.pk}/snapshots/nope/delete/", HTTP_HX_REQUEST="true").content.decode()
    assert "has no snapshot &#x27;nope&#x27;" in missing
