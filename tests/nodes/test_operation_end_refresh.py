"""The operation-end refresh (issue 11, Freshness): a change made through the portal shows when its
operation ends, not at the next sync cycle. With the periodic sync out of the way (no cycle may be
queued), each operation kind must have saved what it touched and pushed it to the open pages by the
time it is final: the push is recorded before the operation's end (operation_finished)."""

from __future__ import annotations

import pytest

from apps.core import live
from apps.guests.models import Guest
from apps.nodes import presence
from apps.operations.models import Operation
from apps.operations.signals import operation_finished

from tests.fixtures import pve, sim_cluster, sync, wait_for, wait_task  # noqa: F401  (fixtures)

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def no_periodic_sync(monkeypatch):
    """No sync cycle can be queued (beat does not run in tests; this also stops enqueue_sync)."""
    from apps.nodes import tasks

    queued = []
    monkeypatch.setattr(tasks.cluster_sync, "delay", lambda *args, **kwargs: queued.append(args))
    return queued


@pytest.fixture
def timeline(monkeypatch):
    """What happened, in order: ("push", group, data) for each live push, ("finished", op id) when
    an operation ends (the worker's threads run in this process, so they are recorded too)."""
    events = []
    real_push = live.push

    def recording_push(group, html=None, data=None):
        events.append(("push", group, data, html or ""))
        return real_push(group, html=html, data=data)

    def on_finished(sender, operation, **kwargs):
        events.append(("finished", str(operation.pk)))

    monkeypatch.setattr(live, "push", recording_push)
    operation_finished.connect(on_finished, dispatch_uid="tests.end_refresh")
    yield events
    operation_finished.disconnect(dispatch_uid="tests.end_refresh")


@pytest.fixture
def watched(sim_cluster):
    """Someone has a page of the cluster open (pushes that wait for a watcher are sent)."""
    groups = [f"cluster-{sim_cluster.pk}"]
    presence.watch(groups, "tests.end-refresh")
    yield presence
    presence.watch(groups, "tests.end-refresh", present=False)


def succeeded(events, op_id) -> Operation:
    """The operation once it ended (its operation_finished sent: recorded in `events`)."""
    wait_for(lambda: ("finished", str(op_id)) in events, timeout=90)
    done = Operation.objects.get(pk=op_id)
    assert done.status == "succeeded", (done.error, [e.message for e in done.events.order_by("seq")])
    return done


def before_end(events, op_id, match) -> list:
    """The pushes matching `match(group, data, html)` recorded before operation `op_id` ended."""
    end = events.index(("finished", str(op_id)))
    return [e for e in events[:end] if e[0] == "push" and match(e[1], e[2], e[3])]


def test_a_power_action_shows_the_guest_row_when_it_ends(sim_cluster, celery_worker, api, watched,
                                                         no_periodic_sync, timeline):
    vm = Guest.objects.get(cluster=sim_cluster, vmid=104)
    assert vm.status == "stopped"
    op = api.post(f"/api/v1/guests/{vm.pk}/start/", {}, expect=202)
    succeeded(timeline, op["id"])
    assert Guest.objects.get(pk=vm.pk).status == "running"
    rows = before_end(timeline, op["id"], lambda group, data, html: group == f"cluster-{sim_cluster.pk}"
                      and (data or {}).get("type") == "guests" and vm.pk in data.get("changed", []))
    assert rows and "running" in rows[-1][3].lower()
    assert no_periodic_sync == []


def test_an_ha_option_shows_when_its_operation_ends(sim_cluster, celery_worker, api, watched, no_periodic_sync,
                                                    timeline):
    """HA options are only in /cluster/ha/status/current, which a quiet cycle does not read (it keeps
    the last answer for the idle interval): the operation's end reads it afresh."""
    from apps.ha.models import HaResource

    sync(sim_cluster)  # a quiet cycle: the HA status is now kept, not read
    assert sync(sim_cluster).calls == {"GET /cluster/resources": 1}
    vm = Guest.objects.get(cluster=sim_cluster, vmid=100)
    before = HaResource.objects.get(cluster=sim_cluster, sid="vm:100")
    assert before.max_restart != 3
    op = api.post("/api/v1/ha/resources/set/", {"guests": [vm.pk], "state": "started", "max_restart": 3}, expect=202)
    succeeded(timeline, op["id"])
    assert HaResource.objects.get(pk=before.pk).max_restart == 3
    assert before_end(timeline, op["id"], lambda group, data, html: group == f"ha-{sim_cluster.pk}")
    assert no_periodic_sync == []


def test_an_upload_lists_the_file_when_it_ends(sim_cluster, celery_worker, api, no_periodic_sync, timeline):
    from django.core.files.uploadedfile import SimpleUploadedFile

    from apps.storage.models import Storage, StorageContent

    nfs = Storage.objects.get(cluster=sim_cluster, storage="nfs-store")
    upload = SimpleUploadedFile("end-refresh.iso", b"ISO!" * 1000, content_type="application/octet-stream")
    response = api.client.post(f"/api/v1/storage/{nfs.pk}/upload/", {"content": "iso", "file": upload},
                               format="multipart")
    assert response.status_code == 202, response.content
    op_id = response.json()["id"]
    succeeded(timeline, op_id)
    assert StorageContent.objects.filter(storage=nfs, volid="nfs-store:iso/end-refresh.iso").exists()
    assert before_end(timeline, op_id, lambda group, data, html: group == f"storage-{nfs.pk}")
    assert no_periodic_sync == []


def test_a_gpu_attach_shows_the_config_and_the_card_when_it_ends(sim_cluster, celery_worker, api, operator, pve,
                                                                 no_periodic_sync, timeline):
    from apps.gpus import profiles
    from apps.gpus.models import GpuAllocation, GpuDevice
    from apps.gpus.services import live_group

    from tests.fixtures import gpu_inventory

    gpu_inventory(sim_cluster)
    a16 = GpuDevice.objects.get(cluster=sim_cluster, node__name="pve2")
    four_q = profiles.gpu_profile_save(user=operator, cluster=sim_cluster, data={
        "name": "A16 4Q vGPU", "kind": "mdev", "mdev_type": "nvidia-747", "devices": [a16.pk],
        "mapping_id": "vgpu-a16"})
    wait_task(pve, pve.post("nodes/pve2/qemu", vmid=781, name="render-02", memory=2048, cores=2,
                            scsi0="ceph-rbd:8"))
    sync(sim_cluster)
    guest = Guest.objects.get(cluster=sim_cluster, vmid=781)
    presence.watch([live_group(sim_cluster.pk)], "tests.end-refresh")  # the GPU map is open
    try:
        op = api.post("/api/v1/gpu-allocations/attach/", {"guest": guest.pk, "gpu_profile": four_q.pk}, expect=202)
        succeeded(timeline, op["id"])
    finally:
        presence.watch([live_group(sim_cluster.pk)], "tests.end-refresh", present=False)
    assert Guest.objects.get(pk=guest.pk).config.get("hostpci0", "").startswith("mapping=vgpu-a16")
    assert GpuAllocation.objects.get(vmid=781).state == "active"
    assert before_end(timeline, op["id"], lambda group, data, html: group == f"guest-{guest.pk}")
    # The map (who holds which card) is pushed by the end hook itself, right at the end.
    assert [e for e in timeline if e[0] == "push" and e[1] == live_group(sim_cluster.pk)]
    assert no_periodic_sync == []


def test_a_followed_proxmox_task_shows_what_it_changed_when_it_ends(sim_cluster, celery_worker, operator, pve,
                                                                     watched, no_periodic_sync, timeline):
    """`task.follow` does not know what its task touches: its end runs one fresh cycle."""
    from apps.operations.services import operation_follow_task

    vm = Guest.objects.get(cluster=sim_cluster, vmid=104)
    upid = pve.post("nodes/pve3/qemu/104/status/start")
    op = operation_follow_task(user=operator, cluster_id=sim_cluster.pk, upid=upid)
    succeeded(timeline, op.pk)
    assert Guest.objects.get(pk=vm.pk).status == "running"
    assert before_end(timeline, op.pk, lambda group, data, html: group == f"cluster-{sim_cluster.pk}"
                      and (data or {}).get("type") == "guests" and vm.pk in data.get("changed", []))
    assert no_periodic_sync == []
