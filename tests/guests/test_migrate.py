"""Migration end to end: precheck targets in words, live/restart migrations with a percentage and
the guest's node changing, failures (target powered off mid-way, locked guest, no quorum) as the
user sees them. pvesim over HTTPS, a real Celery worker, PostgreSQL and Redis."""

import contextlib

import pytest

from apps.guests.actions.migrate import MigrationProgress
from apps.operations.models import Operation

from tests.guests.test_power import final, guest, root_put
from tests.fixtures import sync, wait_for

pytestmark = pytest.mark.django_db(transaction=True)


@contextlib.contextmanager
def clock(pvesim, scale: float):
    """Run pvesim's tasks at `scale` (slower than the suite's 20x, to act in the middle of one)."""
    pvesim.admin("POST", "/time-scale", scale=scale)
    try:
        yield
    finally:
        pvesim.admin("POST", "/time-scale", scale=pvesim.time_scale)


def targets(api, cluster, vmid, expect=200):
    return api.get(f"/api/v1/guests/{guest(cluster, vmid).pk}/migrate-targets/", expect=expect)


def migrate(api, cluster, vmid, target):
    op = api.post(f"/api/v1/guests/{guest(cluster, vmid).pk}/migrate/", {"target": target}, expect=202)
    assert op["kind"] == "guest.migrate" and op["status"] == "pending"
    return op


def finished(op_id, timeout=60):
    return wait_for(lambda: final(op_id), timeout=timeout)


def progress_values(op: Operation) -> list[int]:
    return [e.progress for e in op.events.order_by("seq") if e.progress is not None]


# -- precheck ----------------------------------------------------------------------------------


@pytest.mark.sparse  # also against a Proxmox that sends only what the schema promises
def test_targets_of_a_running_vm_are_the_other_nodes_and_live(sim_cluster, api):
    plan = targets(api, sim_cluster, 101)
    assert plan["source"] == "pve2" and plan["running"] is True and plan["mode"] == "live"
    assert [(t["node"], t["allowed"], t["reasons"]) for t in plan["targets"]] == [
        ("pve1", True, []), ("pve3", True, [])]


def test_mapped_device_without_mapping_is_refused_per_node_with_the_mapping_named(sim_cluster, api):
    plan = targets(api, sim_cluster, 102)
    assert [t["allowed"] for t in plan["targets"]] == [False, False]
    pve2 = plan["targets"][0]
    assert pve2["node"] == "pve2"
    assert "mapped device hostpci0 (gpu-l40s) has no mapping there" in pve2["reasons"]
    assert any("cannot move while running" in r for r in pve2["reasons"])


def test_unavailable_storage_and_offline_node_are_reasons(sim_cluster, api, pve, pvesim):
    pve.put("storage/local-zfs", nodes="pve1,pve3")
    plan = targets(api, sim_cluster, 201)
    assert plan["mode"] == "restart"
    by_node = {t["node"]: t for t in plan["targets"]}
    assert by_node["pve1"]["allowed"] and not by_node["pve2"]["allowed"]
    assert by_node["pve2"]["reasons"] == ["storage local-zfs is not available there"]

    pvesim.admin("POST", "/nodes/pve2/power", state="off")
    sync(sim_cluster)
    by_node = {t["node"]: t for t in targets(api, sim_cluster, 201)["targets"]}
    assert by_node["pve1"]["allowed"] and by_node["pve2"]["online"] is False
    assert by_node["pve2"]["reasons"] == ["the node is offline", "storage local-zfs is not available there"]


def test_local_disks_are_listed_as_copied(sim_cluster, api, pve):
    volid = pve.post("nodes/pve3/storage/local-zfs/content", vmid=104, filename="vm-104-disk-1", size="1G")
    pve.put("nodes/pve3/qemu/104/config", scsi1=f"{volid},size=1G")
    plan = targets(api, sim_cluster, 104)
    assert plan["mode"] == "offline" and plan["disk_bytes"] == 1024 ** 3
    assert plan["notes"] == [f"Local disks are copied to the target: {volid} (1.0 GiB)"]


def test_targets_of_a_locked_guest_answer_409_naming_the_lock(sim_cluster, api, pvesim):
    root_put(pvesim, "nodes/pve2/qemu/101/config", lock="backup")
    body = targets(api, sim_cluster, 101, expect=409)
    assert "it is locked (backup: a backup is running)" in body["detail"]
    assert body["detail"].endswith("Proxmox said: VM is locked (backup)")


# -- field errors ------------------------------------------------------------------------------


@pytest.mark.parametrize("body, field, message", [
    ({}, "target", "This field is required."),
    ({"target": "pve2"}, "target", "VM 101 (web-02) is already on pve2"),
    ({"target": "pve9"}, "target", "'pve9' is not a node of cluster sim"),
])
def test_bad_target_is_a_field_error_and_queues_nothing(sim_cluster, api, body, field, message):
    response = api.post(f"/api/v1/guests/{guest(sim_cluster, 101).pk}/migrate/", body, expect=400)
    assert response["errors"] == {field: [message]}
    assert not Operation.objects.filter(kind="guest.migrate").exists()


def test_offline_target_is_refused_before_proxmox(sim_cluster, api, pvesim):
    pvesim.admin("POST", "/nodes/pve3/power", state="off")
    sync(sim_cluster)
    response = api.post(f"/api/v1/guests/{guest(sim_cluster, 101).pk}/migrate/", {"target": "pve3"}, expect=400)
    assert response["errors"] == {"target": ["node pve3 is offline"]}


def test_second_migrate_during_a_migration_says_one_is_running(sim_cluster, api):
    first = migrate(api, sim_cluster, 101, "pve3")  # no worker here: it stays queued
    vm = guest(sim_cluster, 101)
    # Mid-migration a sync may already show the guest on its target: still not "already on pve3".
    vm.node = vm.cluster.nodes.get(name="pve3")
    vm.save(update_fields=["node"])
    for target in ("pve3", "pve1"):
        response = api.post(f"/api/v1/guests/{vm.pk}/migrate/", {"target": target}, expect=400)
        assert response["errors"] == {"target": [
            "VM 101 (web-02) is being migrated to pve3; wait until that migration ends"]}
    assert [str(pk) for pk in Operation.objects.filter(kind="guest.migrate").values_list("pk", flat=True)] == [first["id"]]


def test_plain_users_cannot_see_or_migrate(sim_cluster, api_for, user):
    other = api_for(user)
    other.post(f"/api/v1/guests/{guest(sim_cluster, 101).pk}/migrate/", {"target": "pve3"}, expect=404)
    other.get(f"/api/v1/guests/{guest(sim_cluster, 101).pk}/migrate-targets/", expect=404)


# -- flows -------------------------------------------------------------------------------------


@pytest.mark.sparse  # also against a Proxmox that sends only what the schema promises
def test_live_migration_reports_a_rising_percentage_and_moves_the_guest(sim_cluster, celery_worker, api):
    op = finished(migrate(api, sim_cluster, 101, "pve3")["id"])
    assert op.status == "succeeded", (op.error, [e.message for e in op.events.order_by("seq")])
    values = progress_values(op)
    intermediate = sorted({v for v in values if 0 < v < 100})
    assert len(intermediate) >= 3, values
    assert values == sorted(values), "progress never moves back"
    messages = [e.message for e in op.events.order_by("seq")]
    assert any("migration active, transferred" in m for m in messages)
    assert any(":qmigrate:101:" in u for u in op.upids)
    moved = guest(sim_cluster, 101)
    assert moved.node.name == "pve3" and moved.status == "running"
    assert op.result == {"source": "pve2", "target": "pve3", "mode": "live"}


@pytest.mark.sparse  # also against a Proxmox that sends only what the schema promises
def test_container_migrates_in_restart_mode(sim_cluster, celery_worker, api):
    op = finished(migrate(api, sim_cluster, 201, "pve1")["id"])
    assert op.status == "succeeded", op.error
    messages = [e.message for e in op.events.order_by("seq")]
    assert any("shutdown CT 201" in m for m in messages) and any("Restart mode" in m for m in messages)
    assert any(v and 0 < v < 100 for v in progress_values(op)), "volume copy shows progress"
    moved = guest(sim_cluster, 201)
    assert moved.node.name == "pve1" and moved.status == "running"


def test_target_powered_off_mid_way_fails_clearly_and_guest_stays(sim_cluster, celery_worker, api, pvesim):
    with clock(pvesim, 2.0):
        op = migrate(api, sim_cluster, 101, "pve3")
        wait_for(lambda: Operation.objects.get(pk=op["id"]).events.filter(
            message__contains="migration active, transferred").exists())
        pvesim.admin("POST", "/nodes/pve3/power", state="off")
        done = finished(op["id"])
    assert done.status == "failed"
    assert done.error.startswith("Could not migrate VM 101 (web-02) to pve3: the target node pve3 is offline or "
                                 "became unreachable; it is still on pve2. Proxmox said: "), done.error
    assert "No route to host" in done.error and "(task: migration problems)" in done.error
    stayed = guest(sim_cluster, 101)
    assert stayed.node.name == "pve2" and stayed.status == "running"


def test_locked_guest_fails_naming_the_lock(sim_cluster, celery_worker, api, pvesim):
    root_put(pvesim, "nodes/pve2/qemu/101/config", lock="snapshot")
    done = finished(migrate(api, sim_cluster, 101, "pve3")["id"])
    assert done.status == "failed"
    assert done.error == ("Could not migrate VM 101 (web-02) to pve3: it is locked (snapshot: a snapshot is being "
                          "taken). Proxmox said: VM is locked (snapshot)")
    assert guest(sim_cluster, 101).node.name == "pve2"


def test_no_quorum_is_explained(sim_cluster, celery_worker, api, pvesim):
    pvesim.admin("POST", "/nodes/pve2/partition", partitioned=True)
    done = finished(migrate(api, sim_cluster, 101, "pve3")["id"])
    assert done.status == "failed"
    assert "the cluster has no quorum" in done.error and "no quorum" in done.error.split("Proxmox said:")[1]


def test_migrate_dialog_lists_targets_and_post_answers_the_progress_panel(sim_cluster, celery_worker, client):
    pk = guest(sim_cluster, 102).pk
    page = client.get(f"/guests/{pk}/migrate/", HTTP_HX_REQUEST="true").content.decode()
    assert "mapped device hostpci0 (gpu-l40s) has no mapping there" in page and "not allowed" in page
    pk = guest(sim_cluster, 101).pk
    page = client.get(f"/guests/{pk}/migrate/", HTTP_HX_REQUEST="true").content.decode()
    assert 'value="pve3"' in page and "Live migration" in page
    answer = client.post(f"/guests/{pk}/migrate/", {"target": "pve3"}, HTTP_HX_REQUEST="true").content.decode()
    assert 'ws-connect="/ws/operations/' in answer and "Migrate VM 101 (web-02) from pve2 to pve3" in answer
    op = Operation.objects.get(kind="guest.migrate")
    assert finished(op.pk).status == "succeeded"
    wrong = client.post(f"/guests/{pk}/migrate/", {"target": "pve3"}, HTTP_HX_REQUEST="true").content.decode()
    assert "is already on pve3" in wrong


# -- the progress parser -----------------------------------------------------------------------


def test_progress_covers_disk_copy_then_memory_and_never_moves_back():
    parse = MigrationProgress(disk_bytes=2 * 1024 ** 3, state_bytes=2 * 1024 ** 3)
    lines = ["drive-scsi1: transferred 1.0 GiB of 2.0 GiB (50.00%) in 3s",
             "drive-scsi1: transferred 2.0 GiB of 2.0 GiB (100.00%) in 6s",
             "all 'mirror' jobs are ready",
             "migration active, transferred 1.0 GiB of 2.0 GiB VM-state, 300.0 MiB/s",
             "migration active, transferred 512.0 MiB of 2.0 GiB VM-state, 300.0 MiB/s",
             "migration active, transferred 2.0 GiB of 2.0 GiB VM-state, 300.0 MiB/s"]
    assert [parse(line) for line in lines] == [25.0, 50.0, None, 75.0, 75.0, 100.0]


def test_progress_of_zfs_sends_adds_up_volumes():
    parse = MigrationProgress(disk_bytes=4 * 1024 ** 3, state_bytes=0)
    lines = ["total estimated size is 2G", "12:00:01   1024M   rpool/data/subvol-201-disk-0@__migration__",
             "total estimated size is 2G", "12:00:03   1G   rpool/data/subvol-201-disk-1@__migration__"]
    assert [parse(line) for line in lines] == [0.0, 25.0, 50.0, 75.0]


def test_ha_managed_vm_is_followed_through_the_ha_manager(sim_cluster, celery_worker, api):
    op = finished(migrate(api, sim_cluster, 100, "pve2")["id"], timeout=120)
    assert op.status == "succeeded", (op.error, [e.message for e in op.events.order_by("seq")])
    assert any(":hamigrate:100:" in u for u in op.upids) and any(":qmigrate:100:" in u for u in op.upids)
    assert any(v and 0 < v < 100 for v in progress_values(op)), "the HA manager's migration task shows progress"
    assert guest(sim_cluster, 100).node.name == "pve2"


def test_target_offline_before_the_portal_noticed_fails_in_words(sim_cluster, celery_worker, api, pvesim):
    pvesim.admin("POST", "/nodes/pve3/power", state="off")  # no sync since: the portal still shows it online
    done = finished(migrate(api, sim_cluster, 101, "pve3")["id"])
    assert done.status == "failed"
    assert done.error.startswith("Could not migrate VM 101 (web-02) to pve3: the target node pve3 is offline or "
                                 "became unreachable; it is still on pve2. Proxmox said: "), done.error
    assert guest(sim_cluster, 101).node.name == "pve2"


@pytest.mark.sparse  # also against a Proxmox that sends only what the schema promises
def test_stopped_vm_migrates_offline(sim_cluster, celery_worker, api):
    done = finished(migrate(api, sim_cluster, 104, "pve1")["id"])
    assert done.status == "succeeded", done.error
    assert done.result["mode"] == "offline" and guest(sim_cluster, 104).node.name == "pve1"


def test_full_migrate_page_without_htmx(sim_cluster, client):
    page = client.get(f"/guests/{guest(sim_cluster, 101).pk}/migrate/").content.decode()
    assert "<title>Migrate 101 (web-02)" in page and 'id="migrate-dialog"' in page


def test_live_migration_with_a_local_disk_mirrors_it_first(sim_cluster, celery_worker, api, pve):
    volid = pve.post("nodes/pve2/storage/local-zfs/content", vmid=101, filename="vm-101-disk-1", size="4G")
    pve.put("nodes/pve2/qemu/101/config", scsi1=f"{volid},size=4G")
    plan = targets(api, sim_cluster, 101)
    assert plan["disk_bytes"] == 4 * 1024 ** 3 and "Local disks are copied" in plan["notes"][0]
    op = finished(migrate(api, sim_cluster, 101, "pve3")["id"])
    assert op.status == "succeeded", (op.error, [e.message for e in op.events.order_by("seq")])
    events = list(op.events.order_by("seq"))
    mirror = [e.progress for e in events if "drive-scsi1: transferred" in e.message]
    state = [e.progress for e in events if "migration active, transferred" in e.message]
    # 4 GiB of disk and 8 GiB of memory: the mirror fills the first third, the VM state the rest.
    assert mirror and max(mirror) <= 34 and state and min(state) >= 33 and max(state) >= 95, (mirror, state)
    assert guest(sim_cluster, 101).node.name == "pve3"
