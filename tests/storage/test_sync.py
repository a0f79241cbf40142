"""Storage rows from the sync cycle, content lists from the refresh service (pvesim over HTTPS)."""

import pytest

from apps.storage.models import Storage, StorageContent
from apps.storage.services import storage_content_refresh

from tests.fixtures import sync, writes_during

pytestmark = pytest.mark.django_db


def test_sync_creates_shared_storage_once_and_local_storage_per_node(sim_cluster):
    rows = {(s.storage, s.node.name if s.node else None): s for s in Storage.objects.filter(cluster=sim_cluster)}
    assert ("ceph-rbd", None) in rows and ("nfs-store", None) in rows
    assert {("local", n) for n in ("pve1", "pve2", "pve3")} <= set(rows)
    nfs = rows[("nfs-store", None)]
    assert nfs.shared and nfs.type == "nfs" and "iso" in nfs.content and "backup" in nfs.content
    assert nfs.nodes == ["pve1", "pve2", "pve3"]
    assert nfs.maxdisk > 0 and nfs.status == "available"
    local = rows[("local", "pve1")]
    assert not local.shared and local.type == "dir"


def test_second_sync_without_changes_writes_no_storage_rows(sim_cluster):
    from apps.storage.services import storage_sync
    from apps.nodes.sync import fetch_snapshot
    from apps.nodes.services import cluster_client

    with cluster_client(sim_cluster) as client:
        snapshot = fetch_snapshot(client)
    storage_sync(sim_cluster, snapshot)
    writes = writes_during(lambda: storage_sync(sim_cluster, snapshot))
    assert writes == []


def test_content_refresh_lists_isos_templates_and_backups(sim_cluster):
    nfs = Storage.objects.get(cluster=sim_cluster, storage="nfs-store")
    counts = storage_content_refresh(storage=nfs)
    assert counts["created"] >= 5
    kinds = set(StorageContent.objects.filter(storage=nfs).values_list("content", flat=True))
    assert {"iso", "vztmpl", "backup"} <= kinds
    backup = StorageContent.objects.get(storage=nfs, volid="nfs-store:backup/vzdump-qemu-101-2026_11_20-02_00_04.vma.zst")
    assert backup.vmid == 101 and backup.size > 0 and backup.ctime is not None
    # Same list again: nothing written but the refresh timestamp.
    writes = writes_during(lambda: storage_content_refresh(storage=nfs))
    assert all('"storage_storage"' in w for w in writes) and len(writes) == 1


def content_calls(pvesim) -> int:
    return sum(r["count"] for r in pvesim.counters()["requests"] if r["path"].endswith("/content"))


def test_content_refresh_makes_one_call_and_none_for_disk_only_storage(sim_cluster, pvesim):
    rbd = Storage.objects.get(cluster=sim_cluster, storage="ceph-rbd")
    nfs = Storage.objects.get(cluster=sim_cluster, storage="nfs-store")
    before = content_calls(pvesim)
    assert storage_content_refresh(storage=rbd) == {"created": 0, "updated": 0, "deleted": 0}
    assert content_calls(pvesim) == before
    storage_content_refresh(storage=nfs)
    assert content_calls(pvesim) == before + 1


def test_deleted_volume_disappears_on_refresh(sim_cluster, pve):
    nfs = Storage.objects.get(cluster=sim_cluster, storage="nfs-store")
    storage_content_refresh(storage=nfs)
    volid = "nfs-store:iso/ubuntu-24.04.3-live-server-amd64.iso"
    assert StorageContent.objects.filter(storage=nfs, volid=volid).exists()
    upid = pve.delete(f"nodes/pve1/storage/nfs-store/content/{volid}")
    from tests.fixtures import wait_task

    assert wait_task(pve, upid)["exitstatus"] == "OK"
    counts = storage_content_refresh(storage=nfs)
    assert counts["deleted"] == 1
    assert not StorageContent.objects.filter(storage=nfs, volid=volid).exists()


def test_sync_never_fetches_content(sim_cluster, pvesim):
    before = content_calls(pvesim)
    sync(sim_cluster)
    assert content_calls(pvesim) == before


def test_stale_content_is_refreshed_only_while_someone_looks(sim_cluster, monkeypatch, django_capture_on_commit_callbacks):
    """Content lists older than the interval are re-read when a page of the cluster is open (the
    sync handler queues it, once), never for nobody; the beat task skips unwatched clusters too."""
    from datetime import timedelta

    from django.utils import timezone

    from apps.nodes import presence
    from apps.storage import services

    queued = []
    monkeypatch.setattr(services, "_enqueue_refresh", lambda ids: queued.extend(ids))
    Storage.objects.filter(cluster=sim_cluster).update(content_synced_at=timezone.now() - timedelta(days=1))
    listable = sorted(s.pk for s in Storage.objects.filter(cluster=sim_cluster) if services._listable(s))
    with django_capture_on_commit_callbacks(execute=True):
        sync(sim_cluster)
    assert queued == [] and services.storage_content_refresh_all() == 0  # nobody looks
    presence.watch([f"cluster-{sim_cluster.pk}"], "tests.storage-content")
    try:
        with django_capture_on_commit_callbacks(execute=True):
            sync(sim_cluster)
            sync(sim_cluster)  # queued once, not every watched cycle
        assert sorted(queued) == listable
        assert services.storage_content_refresh_all() == len(listable)
    finally:
        presence.watch([f"cluster-{sim_cluster.pk}"], "tests.storage-content", present=False)
