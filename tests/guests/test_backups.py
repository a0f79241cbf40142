"""Backups end to end: back up now with vzdump's percentage, restore to a new guest (reserved vmid)
or over the same one, delete, and scheduled backup jobs written through to Proxmox's
/cluster/backup. pvesim over HTTPS, a real Celery worker, PostgreSQL and Redis."""

import pytest

from apps.guests.actions.backups import backup_job_refresh, calendar_event_error, guest_restore
from apps.guests.models import BackupJob, Guest, VmidReservation
from apps.operations.models import Operation
from apps.storage.models import Storage, StorageContent
from apps.storage.services import storage_content_refresh

from tests.guests.test_power import final, guest
from tests.fixtures import wait_for

pytestmark = pytest.mark.django_db(transaction=True)

SCENARIO_BACKUP = "nfs-store:backup/vzdump-qemu-101-2026_11_20-02_00_04.vma.zst"


def finished(op_id, timeout=60):
    return wait_for(lambda: final(op_id), timeout=timeout)


def refresh_backups(cluster):
    storage = Storage.objects.get(cluster=cluster, storage="nfs-store")
    storage_content_refresh(storage=storage)
    return storage


def progress_values(op):
    return [e.progress for e in op.events.order_by("seq") if e.progress is not None]


# -- back up now -------------------------------------------------------------------------------


def test_backup_now_reports_rising_percentage_and_lists_the_new_backup(sim_cluster, celery_worker, api, pve,
                                                                      client):
    vm = guest(sim_cluster, 101)
    op = api.post(f"/api/v1/guests/{vm.pk}/backup/", {"storage": "nfs-store", "mode": "snapshot",
                                                     "compress": "zstd", "notes": "before upgrade"}, expect=202)
    assert op["kind"] == "guest.backup"
    done = finished(op["id"])
    assert done.status == "succeeded", (done.error, [e.message for e in done.events.order_by("seq")])
    values = progress_values(done)
    assert len({v for v in values if 0 < v < 100}) >= 5, values
    assert values == sorted(values)
    assert any(e.message.startswith("INFO:  50% (") for e in done.events.all())
    volid = done.result["volid"]
    assert volid.startswith("nfs-store:backup/vzdump-qemu-101-") and volid.endswith(".vma.zst")
    row = StorageContent.objects.get(volid=volid)
    assert row.vmid == 101 and row.content == "backup" and row.notes == "before upgrade"
    assert volid in {v["volid"] for v in pve.get("nodes/pve2/storage/nfs-store/content", content="backup")}
    page = client.get(f"/guests/{vm.pk}/backups/").content.decode()
    assert row.filename in page


@pytest.mark.parametrize("body, field", [
    ({"storage": "ceph-rbd"}, "storage"),
    ({"storage": "nope"}, "storage"),
    ({"storage": "nfs-store", "mode": "fast"}, "mode"),
    ({"storage": "nfs-store", "compress": "rar"}, "compress"),
    ({}, "storage"),
])
def test_bad_backup_input_is_a_field_error(sim_cluster, api, body, field):
    response = api.post(f"/api/v1/guests/{guest(sim_cluster, 101).pk}/backup/", body, expect=400)
    assert list(response["errors"]) == [field]
    assert not Operation.objects.filter(kind="guest.backup").exists()


def test_backup_of_a_locked_guest_fails_naming_the_lock(sim_cluster, celery_worker, api, pvesim):
    from tests.guests.test_power import root_put

    root_put(pvesim, "nodes/pve2/qemu/101/config", lock="migrate")
    op = api.post(f"/api/v1/guests/{guest(sim_cluster, 101).pk}/backup/", {"storage": "nfs-store"}, expect=202)
    done = finished(op["id"])
    assert done.status == "failed"
    assert done.error == ("Could not back up VM 101 (web-02): it is locked (migrate: it is being migrated). "
                          "Proxmox said: VM is locked (migrate) (task: job errors)")


# -- restore -----------------------------------------------------------------------------------


def test_restore_to_a_new_guest_reserves_a_vmid_and_lists_the_new_guest(sim_cluster, celery_worker, api, pve):
    refresh_backups(sim_cluster)
    vm = guest(sim_cluster, 101)
    op = api.post(f"/api/v1/guests/{vm.pk}/restore/", {"backup": SCENARIO_BACKUP, "target": "new"}, expect=202)
    vmid = Operation.objects.get(pk=op["id"]).task_kwargs["vmid"]
    assert vmid not in (100, 101, 102, 103, 104, 200, 201, 9000)
    assert op["title"] == f"Restore vzdump-qemu-101-2026_11_20-02_00_04.vma.zst as new VM {vmid}"
    done = finished(op["id"])
    assert done.status == "succeeded", (done.error, [e.message for e in done.events.order_by("seq")])
    assert len({v for v in progress_values(done) if 0 < v < 100}) >= 3
    new = Guest.objects.get(cluster=sim_cluster, vmid=vmid)
    assert done.result == {"vmid": vmid, "guest_id": new.pk} and new.node.name == "pve2"
    assert pve.get(f"nodes/pve2/qemu/{vmid}/config")["name"] == "web-02"
    # Released by the operation_finished receiver, which runs just after the final status commits.
    wait_for(lambda: not VmidReservation.objects.exists(), timeout=10)


def test_concurrent_restores_never_share_a_vmid(sim_cluster, operator):
    storage = refresh_backups(sim_cluster)
    backup = StorageContent.objects.get(storage=storage, volid=SCENARIO_BACKUP)
    vm = guest(sim_cluster, 101)
    first = guest_restore(guest=vm, user=operator, backup=backup, target="new")
    second = guest_restore(guest=vm, user=operator, backup=backup, target="new")
    vmids = {first.task_kwargs["vmid"], second.task_kwargs["vmid"]}
    assert len(vmids) == 2
    assert set(VmidReservation.objects.values_list("vmid", flat=True)) == vmids
    assert set(VmidReservation.objects.values_list("operation_id", flat=True)) == {first.pk, second.pk}


def test_restore_over_the_same_guest_needs_it_stopped_then_replaces_it(sim_cluster, celery_worker, api):
    refresh_backups(sim_cluster)
    running = guest(sim_cluster, 101)
    response = api.post(f"/api/v1/guests/{running.pk}/restore/", {"backup": SCENARIO_BACKUP, "target": "same"},
                        expect=400)
    assert response["errors"] == {"target": ["VM 101 (web-02) is running; shut it down before restoring over it"]}
    stopped = guest(sim_cluster, 104)
    op = api.post(f"/api/v1/guests/{stopped.pk}/backup/", {"storage": "nfs-store", "mode": "stop"}, expect=202)
    volid = finished(op["id"]).result["volid"]
    op = api.post(f"/api/v1/guests/{stopped.pk}/restore/", {"backup": volid, "target": "same"}, expect=202)
    done = finished(op["id"])
    assert done.status == "succeeded", done.error
    assert any(":qmrestore:104:" in u for u in done.upids)
    assert done.result == {"vmid": 104, "guest_id": stopped.pk}


def test_restore_of_a_backup_of_another_guest_is_refused(sim_cluster, api):
    refresh_backups(sim_cluster)
    response = api.post(f"/api/v1/guests/{guest(sim_cluster, 100).pk}/restore/",
                        {"backup": SCENARIO_BACKUP, "target": "new"}, expect=400)
    assert list(response["errors"]) == ["backup"]


# -- delete ------------------------------------------------------------------------------------


def test_delete_backup_removes_it_from_proxmox_and_the_list(sim_cluster, celery_worker, api, pve):
    storage = refresh_backups(sim_cluster)
    row = StorageContent.objects.get(storage=storage, volid=SCENARIO_BACKUP)
    op = api.delete(f"/api/v1/backups/{row.pk}/", expect=202)
    done = finished(op["id"])
    assert done.status == "succeeded", done.error
    assert not StorageContent.objects.filter(volid=SCENARIO_BACKUP).exists()
    assert SCENARIO_BACKUP not in {v["volid"] for v in pve.get("nodes/pve1/storage/nfs-store/content")}


def test_protected_backup_is_not_deleted(sim_cluster, api):
    storage = refresh_backups(sim_cluster)
    row = StorageContent.objects.get(storage=storage, volid=SCENARIO_BACKUP)
    StorageContent.objects.filter(pk=row.pk).update(protected=True)
    response = api.delete(f"/api/v1/backups/{row.pk}/", expect=400)
    assert "protected" in response["errors"]["backup"][0]


# -- backup jobs -------------------------------------------------------------------------------


def job_body(cluster, **changes):
    return {"cluster": cluster.pk, "schedule": "mon..fri 02:30", "storage": "nfs-store", "selection": "vmid",
            "vmids": [100, 101], "retention": {"keep-last": 3, "keep-daily": 7}, "mode": "snapshot",
            "compress": "zstd", "enabled": True, "comment": "web tier", **changes}


def test_backup_job_create_edit_delete_go_through_proxmox(sim_cluster, api, pve):
    job = api.post("/api/v1/backup-jobs/", job_body(sim_cluster), expect=201)
    assert job["job_id"].startswith("backup-") and job["next_run"]
    remote = pve.get(f"cluster/backup/{job['job_id']}")
    assert remote["schedule"] == "mon..fri 02:30" and remote["vmid"] == "100,101"
    assert remote["prune-backups"] == "keep-last=3,keep-daily=7" and remote["storage"] == "nfs-store"

    job = api.patch(f"/api/v1/backup-jobs/{job['id']}/", {"schedule": "sat 03:00", "selection": "pool",
                                                          "pool": "acme", "enabled": False})
    remote = pve.get(f"cluster/backup/{job['job_id']}")
    assert remote["schedule"] == "sat 03:00" and remote["pool"] == "acme" and "vmid" not in remote
    assert int(remote["enabled"]) == 0
    assert job["selection"] == "pool" and job["retention"] == {"keep-last": 3, "keep-daily": 7}

    listed = api.get("/api/v1/backup-jobs/")["results"]
    assert [j["job_id"] for j in listed] == [job["job_id"]]
    api.delete(f"/api/v1/backup-jobs/{job['id']}/")
    assert pve.get("cluster/backup") == [] and not BackupJob.objects.exists()


@pytest.mark.parametrize("schedule, reason", [
    ("mon..fry 02:30", "'fry' is not a weekday"),
    ("25:00", "hours must be * or numbers from 0 to 23"),
    ("*/0", "the repetition after '/' must be a positive number"),
    ("02:30 extra", "unexpected 'extra'"),
    ("", "may not be blank"),
])
def test_bad_schedules_are_field_errors_and_nothing_reaches_proxmox(sim_cluster, api, pve, schedule, reason):
    response = api.post("/api/v1/backup-jobs/", job_body(sim_cluster, schedule=schedule), expect=400)
    assert list(response["errors"]) == ["schedule"] and reason in response["errors"]["schedule"][0]
    assert pve.get("cluster/backup") == []


@pytest.mark.parametrize("changes, field", [
    ({"storage": "ceph-rbd"}, "storage"),
    ({"vmids": []}, "vmids"),
    ({"vmids": [777]}, "vmids"),
    ({"selection": "pool", "pool": ""}, "pool"),
    ({"retention": {"keep-often": 2}}, "retention"),
])
def test_bad_job_fields_are_named(sim_cluster, api, changes, field):
    response = api.post("/api/v1/backup-jobs/", job_body(sim_cluster, **changes), expect=400)
    assert field in response["errors"], response


def test_empty_schedule_in_the_service_says_what_to_enter():
    assert calendar_event_error(" ").startswith("enter a schedule, e.g.")


@pytest.mark.parametrize("schedule", ["daily", "*/15", "mon..fri 02:30", "sat 03:00", "mon,wed,fri 22:00",
                                      "8:00/15", "*-*-01 00:00", "2026-01-01 00:00", "sun 1..5:00", "weekly"])
def test_valid_calendar_events(schedule):
    assert calendar_event_error(schedule) is None


def test_mirror_follows_jobs_made_in_proxmox(sim_cluster, pve):
    pve.post("cluster/backup", id="nightly", schedule="21:00", storage="nfs-store", all=1, mode="stop")
    jobs = backup_job_refresh(cluster=sim_cluster)
    assert [(j.job_id, j.selection, j.mode, j.schedule) for j in jobs] == [("nightly", "all", "stop", "21:00")]
    assert jobs[0].next_run is not None
    pve.delete("cluster/backup/nightly")
    assert backup_job_refresh(cluster=sim_cluster) == []


def test_backup_job_pages(sim_cluster, client, pve):
    page = client.get("/backup-jobs/add/").content.decode()
    assert "Create job" in page and "keep-last" in page.lower().replace(" ", "-")
    response = client.post("/backup-jobs/add/", {"cluster": sim_cluster.pk, "schedule": "mon..fry", "storage":
                                                 "nfs-store", "selection": "all", "mode": "snapshot",
                                                 "compress": "zstd", "enabled": "on"})
    assert response.status_code == 400 and "&#x27;fry&#x27; is not a weekday" in response.content.decode()
    response = client.post("/backup-jobs/add/", {"cluster": sim_cluster.pk, "schedule": "sat 03:00", "storage":
                                                 "nfs-store", "selection": "all", "mode": "snapshot",
                                                 "compress": "zstd", "enabled": "on", "keep-weekly": "4"})
    assert response.status_code == 302
    job = BackupJob.objects.get()
    assert pve.get(f"cluster/backup/{job.job_id}")["prune-backups"] == "keep-weekly=4"
    listing = client.get("/backup-jobs/").content.decode()
    assert job.job_id in listing and "sat 03:00" in listing
    assert client.get(f"/backup-jobs/{job.pk}/edit/").status_code == 200
    assert client.post(f"/backup-jobs/{job.pk}/delete/").status_code == 302
    assert pve.get("cluster/backup") == []


def test_container_backup_to_node_local_storage_and_restore_as_new(sim_cluster, celery_worker, api):
    ct = guest(sim_cluster, 201)
    op = api.post(f"/api/v1/guests/{ct.pk}/backup/", {"storage": "local", "mode": "suspend", "compress": "gzip"},
                  expect=202)
    done = finished(op["id"])
    assert done.status == "succeeded", done.error
    volid = done.result["volid"]
    assert volid.startswith("local:backup/vzdump-lxc-201-") and volid.endswith(".tar.gz")
    assert StorageContent.objects.get(volid=volid).storage.node.name == "pve3"
    op = api.post(f"/api/v1/guests/{ct.pk}/restore/", {"backup": volid, "target": "new", "storage": "local-zfs"},
                  expect=202)
    done = finished(op["id"])
    assert done.status == "succeeded", (done.error, [e.message for e in done.events.order_by("seq")])
    assert any(":vzrestore:" in u for u in done.upids)
    new = Guest.objects.get(cluster=sim_cluster, vmid=done.result["vmid"])
    assert new.type == "lxc" and new.node.name == "pve3"


def test_sync_loop_refreshes_the_job_mirror_only_while_watched(sim_cluster, celery_worker, pve, monkeypatch):
    from django.core.cache import cache

    from apps.guests.actions.backup_jobs import worker
    from apps.nodes import presence

    from tests.fixtures import sync

    pve.post("cluster/backup", id="weekly-all", schedule="sun 01:00", storage="nfs-store", all=1)
    cache.delete(f"guests:backup-jobs:{sim_cluster.pk}")
    queued = []
    monkeypatch.setattr(worker.backup_job_refresh_task, "delay", lambda pk: queued.append(pk))
    sync(sim_cluster)  # nobody looks: /cluster/backup is not read for nobody
    assert queued == []
    monkeypatch.undo()
    presence.watch([f"cluster-{sim_cluster.pk}"], "tests.backup-jobs")
    try:
        sync(sim_cluster)  # a page of the cluster is open: the handler queues a re-read (no call in the cycle)
        job = wait_for(lambda: BackupJob.objects.filter(cluster=sim_cluster, job_id="weekly-all").first())
    finally:
        presence.watch([f"cluster-{sim_cluster.pk}"], "tests.backup-jobs", present=False)
    assert job.schedule == "sun 01:00" and job.next_run is not None


def test_the_job_page_gets_the_refreshed_list(sim_cluster, client, pve, monkeypatch):
    """Opening the page queues a re-read; the page listens to its clusters and asks for its table
    again once its socket is open (catch_up); a re-read that changed the mirror pushes a trigger
    that fetches the table (htmx: the table alone)."""
    from django.core.cache import cache

    from apps.core import live
    from apps.guests.actions.backup_jobs import worker
    from apps.nodes import presence

    cache.delete(f"guests:backup-jobs:{sim_cluster.pk}")
    queued, pushed = [], []
    monkeypatch.setattr(worker.backup_job_refresh_task, "delay", lambda pk: queued.append(pk))
    page = client.get("/backup-jobs/").content.decode()
    assert queued == [sim_cluster.pk]
    assert f"cluster-{sim_cluster.pk}" in page and 'id="backupjob-table-trigger"' in page
    assert 'hx-trigger="htmx:wsOpen from:body once"' in page  # catch_up: the push may come first
    page = client.get("/backup-jobs/").content.decode()  # queued already: nothing more, no catch-up
    assert queued == [sim_cluster.pk] and "htmx:wsOpen" not in page

    pve.post("cluster/backup", id="nightly", schedule="21:00", storage="nfs-store", all=1)
    monkeypatch.setattr(live, "push", lambda group, html=None, data=None: pushed.append((group, html, data)))
    presence.watch([f"cluster-{sim_cluster.pk}"], "tests.backup-jobs")
    try:
        backup_job_refresh(cluster=sim_cluster)  # the queued re-read, run here
        assert [(g, d) for g, h, d in pushed] == [(f"cluster-{sim_cluster.pk}",
                                                   {"type": "backup_jobs", "cluster": sim_cluster.pk})]
        assert 'id="backupjob-table-trigger"' in pushed[0][1] and 'hx-get="/backup-jobs/"' in pushed[0][1]
        backup_job_refresh(cluster=sim_cluster)  # nothing changed: no push
        assert len(pushed) == 1
    finally:
        presence.watch([f"cluster-{sim_cluster.pk}"], "tests.backup-jobs", present=False)
    table = client.get("/backup-jobs/", HTTP_HX_REQUEST="true").content.decode()
    assert 'id="backupjob-table"' in table and "nightly" in table
    assert "<html" not in table and "<header" not in table


def test_plain_users_see_no_jobs_and_cannot_touch_backups(sim_cluster, api, api_for, user, pve):
    job = api.post("/api/v1/backup-jobs/", job_body(sim_cluster), expect=201)
    other = api_for(user)
    assert other.get("/api/v1/backup-jobs/")["results"] == []
    other.delete(f"/api/v1/backup-jobs/{job['id']}/", expect=404)
    assert other.post("/api/v1/backup-jobs/", job_body(sim_cluster), expect=400)["errors"] == {
        "cluster": ["no such cluster"]}
    other.post(f"/api/v1/guests/{guest(sim_cluster, 101).pk}/backup/", {"storage": "nfs-store"}, expect=404)
    storage = refresh_backups(sim_cluster)
    row = StorageContent.objects.get(storage=storage, volid=SCENARIO_BACKUP)
    other.delete(f"/api/v1/backups/{row.pk}/", expect=404)
    assert len(pve.get("cluster/backup")) == 1
