"""The replication-job editor: create, edit (schedule, rate limit, comment, disabled) and delete ZFS
replication jobs through the API and the HA/storage pages. Writes are operations run against
pvesim; what Proxmox would refuse is a field error before anything is queued; tenants see their
guests' jobs but never change one (404 for another tenant's, 403 for their own)."""

import pytest
from django.test import Client

from apps.core.models import AuditEntry
from apps.guests.models import Guest
from apps.ha.models import HaClusterState, ReplicationJob
from apps.ha.services import ha_refresh
from apps.operations.models import Operation
from apps.proxmox import ha as pve_ha
from apps.storage.models import Storage

from .conftest import finished, wait_for


@pytest.fixture
def refreshed(sim_cluster):
    ha_refresh(cluster=sim_cluster)
    return sim_cluster


def run(api, method, url, body=None):
    op = getattr(api, method)(url, body, expect=202)
    done = wait_for(lambda: finished(op["id"]), timeout=60)
    assert done.status == "succeeded", (done.error, [e.message for e in done.events.order_by("seq")])
    return done


@pytest.mark.django_db(transaction=True)
def test_create_edit_disable_and_delete_round_trip(refreshed, celery_worker, api, pve):
    proxy = Guest.objects.get(cluster=refreshed, vmid=201)  # CT on local ZFS on pve3, replicated to pve1
    op = run(api, "post", "/api/v1/ha/replication/", {"guest": proxy.pk, "target": "pve2", "schedule": "*/5",
                                                      "rate": 50, "comment": "second copy"})
    assert op.kind == "ha.replication_create" and op.result == {"job_id": "201-1"}  # the next free number
    job = ReplicationJob.objects.get(cluster=refreshed, job_id="201-1")  # re-read by the operation itself
    assert (job.source, job.target, job.schedule, job.rate, job.comment, job.disable) == (
        "pve3", "pve2", "*/5", 50, "second copy", False)
    assert job.guest == proxy
    on_proxmox = {j["id"]: j for j in pve_ha.replication_jobs(pve)}["201-1"]
    assert on_proxmox["rate"] == 50 and on_proxmox["schedule"] == "*/5"

    run(api, "patch", f"/api/v1/ha/replication/{job.pk}/", {"schedule": "mon..fri 22:00", "rate": None,
                                                            "disable": True})
    job.refresh_from_db()
    assert (job.schedule, job.rate, job.comment, job.disable) == ("mon..fri 22:00", None, "second copy", True)
    on_proxmox = {j["id"]: j for j in pve_ha.replication_jobs(pve)}["201-1"]
    assert "rate" not in on_proxmox and on_proxmox.get("disable") and on_proxmox["comment"] == "second copy"

    run(api, "put", f"/api/v1/ha/replication/{job.pk}/", {"schedule": "hourly", "rate": 12.5})  # PUT resets
    job.refresh_from_db()
    assert (job.schedule, job.rate, job.comment, job.disable) == ("hourly", 12.5, "", False)

    run(api, "delete", f"/api/v1/ha/replication/{job.pk}/?keep=1")
    assert not ReplicationJob.objects.filter(job_id="201-1").exists()
    assert [j["id"] for j in pve_ha.replication_jobs(pve)] == ["201-0"]
    actions = set(AuditEntry.objects.filter(action__startswith="ha.replication_").values_list("action", flat=True))
    assert actions == {"ha.replication_create", "ha.replication_update", "ha.replication_delete"}


@pytest.mark.django_db
def test_what_proxmox_refuses_is_a_field_error_and_nothing_is_queued(refreshed, api, pve):
    from apps.guests.services import guest_refresh

    web = Guest.objects.get(cluster=refreshed, vmid=100)
    guest_refresh(guest=web)  # its config: disks on ceph-rbd
    proxy = Guest.objects.get(cluster=refreshed, vmid=201)
    template = Guest.objects.get(cluster=refreshed, vmid=9000)
    job = ReplicationJob.objects.get(cluster=refreshed, job_id="201-0")
    bad = [
        ({"guest": web.pk, "target": "pve2"}, "guest", "ceph-rbd (rbd)"),
        ({"guest": template.pk, "target": "pve2"}, "guest", "template"),
        ({"guest": 2**31, "target": "pve2"}, "guest", "no guest"),
        ({"guest": proxy.pk, "target": "pve3"}, "target", "runs on pve3"),
        ({"guest": proxy.pk, "target": "pve9"}, "target", "no node pve9"),
        ({"guest": proxy.pk, "target": "pve1"}, "target", "already replicated to pve1 (job 201-0)"),
        ({"guest": proxy.pk, "target": "pve2", "jobnum": 0}, "jobnum", "201-0 already exists"),
        ({"guest": proxy.pk, "target": "pve2", "schedule": "every day"}, "schedule", "not a valid calendar event"),
        ({"guest": proxy.pk, "target": "pve2", "schedule": "25:00"}, "schedule", "hours"),
        ({"guest": proxy.pk, "target": "pve2", "rate": 0.5}, "rate", "1"),
        ({"guest": proxy.pk, "target": "pve2", "comment": "two\nlines"}, "comment", "line break"),
    ]
    for body, field, words in bad:
        errors = api.post("/api/v1/ha/replication/", body, expect=400)["errors"]
        assert field in errors and words in " ".join(errors[field]), (body, errors)
    for body, field, words in [({"schedule": "*/0"}, "schedule", "positive"), ({"target": "pve2"}, "target", "fixed"),
                               ({"rate": -1}, "rate", "1")]:
        errors = api.patch(f"/api/v1/ha/replication/{job.pk}/", body, expect=400)["errors"]
        assert field in errors and words in " ".join(errors[field]), (body, errors)
    # The copies need the same ZFS storage on the target node.
    guest_refresh(guest=proxy)  # its config: rootfs on local-zfs
    Storage.objects.filter(cluster=refreshed, storage="local-zfs", node__name="pve2").delete()
    errors = api.post("/api/v1/ha/replication/", {"guest": proxy.pk, "target": "pve2"}, expect=400)["errors"]
    assert errors == {"target": ["pve2 has no ZFS storage local-zfs: the copies would have nowhere to go "
                                 "(each run would fail)"]}
    # Without quorum Proxmox refuses every write: so do we, with its reason.
    HaClusterState.objects.filter(cluster=refreshed).update(quorate=False)
    errors = api.post("/api/v1/ha/replication/", {"guest": proxy.pk, "target": "pve2"}, expect=400)["errors"]
    assert "no quorum" in errors["non_field_errors"][0]
    assert "no quorum" in api.delete(f"/api/v1/ha/replication/{job.pk}/", expect=400)["errors"]["non_field_errors"][0]
    assert not Operation.objects.exists()
    assert [j["id"] for j in pve_ha.replication_jobs(pve)] == ["201-0"]  # Proxmox never asked


@pytest.mark.django_db
def test_tenants_never_change_jobs(refreshed, tenants, api_for):
    job = ReplicationJob.objects.get(cluster=refreshed, job_id="201-0")  # proxy-01 is globex's
    acme, globex = api_for(tenants["acme"]), api_for(tenants["globex"])
    url = f"/api/v1/ha/replication/{job.pk}/"
    acme.get(url, expect=404)
    acme.patch(url, {"schedule": "hourly"}, expect=404)
    acme.delete(url, expect=404)
    errors = acme.post("/api/v1/ha/replication/", {"guest": job.guest_id, "target": "pve2"}, expect=400)["errors"]
    assert errors["guest"] == ["no guest with this id"]  # not theirs: as if it did not exist
    assert globex.get(url)["job_id"] == "201-0"  # their guest's job: theirs to see
    globex.patch(url, {"schedule": "hourly"}, expect=403)
    globex.put(url, {"schedule": "hourly"}, expect=403)
    globex.delete(url, expect=403)
    globex.post("/api/v1/ha/replication/", {"guest": job.guest_id, "target": "pve2"}, expect=403)
    # The pages: no editor and no way in.
    for slug, status in (("acme", 404), ("globex", 200)):
        browser = Client()
        browser.force_login(tenants[slug])
        assert browser.post(f"/ha/replication/{job.pk}/", {"schedule": "hourly"}).status_code == status
        answer = browser.post(f"/ha/replication/{job.pk}/delete/", HTTP_HX_REQUEST="true")
        assert answer.status_code == status
        if status == 200:
            assert "may not ha.manage" in answer.content.decode()
        assert browser.post(f"/ha/clusters/{refreshed.pk}/replication/add/", {"vmid": 201, "target": "pve2"}
                            ).status_code == 404
        zfs = Storage.objects.get(cluster=refreshed, type="zfspool", node__name="pve3")
        html = browser.get(zfs.get_absolute_url()).content.decode()
        assert "Add a replication job" not in html and "/delete/" not in html
    assert not Operation.objects.exists()


@pytest.mark.django_db
def test_ha_and_storage_pages_edit_jobs(refreshed, client):
    from apps.guests.services import guest_refresh

    proxy = Guest.objects.get(cluster=refreshed, vmid=201)
    guest_refresh(guest=proxy)  # its config names local-zfs: the add form suggests it
    job = ReplicationJob.objects.get(cluster=refreshed, job_id="201-0")
    html = client.get("/ha/").content.decode()
    # One markup: the HA page uses the storage pages' partials.
    assert f'id="replication-jobs-{refreshed.pk}"' in html and f'id="ceph-{refreshed.pk}"' in html
    assert f'id="replication-add-{refreshed.pk}"' in html and '<option value="201">CT 201 proxy-01 on pve3' in html
    assert f'id="replication-edit-{job.pk}"' in html and 'value="ha-operation"' in html
    assert ('data-confirm-title="Delete replication job 201-0"' in html
            and "Delete replication job 201-0 of CT 201 proxy-01 (pve3 → pve1)?" in html)
    storage_page = client.get(Storage.objects.get(cluster=refreshed, type="zfspool", node__name="pve3")
                              .get_absolute_url()).content.decode()
    assert 'id="replication-jobs"' in storage_page and 'id="replication-operation"' in storage_page
    assert 'value="replication-operation"' in storage_page and "Add a replication job" in storage_page

    # Field errors on the form's fields, nothing queued.
    add = f"/ha/clusters/{refreshed.pk}/replication/add/"
    answer = client.post(add, {"vmid": 201, "target": "pve3", "schedule": "often", "slot": "ha-operation"},
                         HTTP_HX_REQUEST="true").content.decode()
    assert "runs on pve3: replicate to another node" in answer and "not a valid calendar event" in answer
    assert 'id="replication-add-' in answer and "hx-swap-oob" not in answer
    answer = client.post(add, {"vmid": 999, "target": "pve2"}, HTTP_HX_REQUEST="true").content.decode()
    assert f"no guest 999 in {refreshed}" in answer
    assert not Operation.objects.exists()
    # A good one: a fresh form, and the operation's panel in the page's slot (out of band).
    answer = client.post(add, {"vmid": 201, "target": "pve2", "schedule": "*/30", "rate": "20",
                               "slot": "ha-operation"}, HTTP_HX_REQUEST="true").content.decode()
    op = Operation.objects.get()
    assert op.kind == "ha.replication_create" and op.task_kwargs == {
        "job_id": "201-1", "target": "pve2", "schedule": "*/30", "rate": 20, "comment": "", "disable": False}
    assert '<div id="ha-operation" hx-swap-oob="true"' in answer and f"operation-{op.pk}" in answer
    answer = client.post(f"/ha/replication/{job.pk}/", {"schedule": "*/10", "comment": "nightly",
                                                         "slot": "replication-operation"},
                         HTTP_HX_REQUEST="true").content.decode()
    edit = Operation.objects.get(kind="ha.replication_update")
    assert edit.task_kwargs == {"job_id": "201-0", "schedule": "*/10", "rate": None, "comment": "nightly",
                                "disable": False}
    assert '<div id="replication-operation" hx-swap-oob="true"' in answer
    client.post(f"/ha/replication/{job.pk}/delete/", {"keep": "on"}, HTTP_HX_REQUEST="true")
    assert Operation.objects.get(kind="ha.replication_delete").task_kwargs == {"job_id": "201-0", "keep": True}


@pytest.mark.django_db
def test_auditors_see_jobs_without_the_editor(refreshed, django_user_model):
    from django.contrib.auth.models import Group

    from apps.permissions.models import AUDITORS_GROUP

    auditor = django_user_model.objects.create_user(username="auditor", password="auditor-pass-1234")
    auditor.groups.add(Group.objects.get_or_create(name=AUDITORS_GROUP)[0])
    browser = Client()
    browser.force_login(auditor)
    html = browser.get("/ha/").content.decode()
    assert "201-0" in html and "Add a replication job" not in html and "replication-edit-" not in html
    job = ReplicationJob.objects.get(job_id="201-0")
    assert browser.post(f"/ha/replication/{job.pk}/delete/", HTTP_HX_REQUEST="true").status_code == 403  # read-only
    assert not Operation.objects.exists()
