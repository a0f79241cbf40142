"""Guest inventory from the sync cycle (pvesim over HTTPS)."""

import pytest

from apps.guests.models import Guest
from apps.guests.services import guest_sync
from apps.nodes.services import cluster_client
from apps.nodes.sync import Snapshot, fetch_snapshot

from tests.fixtures import sync, wait_task, writes_during

pytestmark = pytest.mark.django_db


def snapshot_of(cluster):
    with cluster_client(cluster) as client:
        return fetch_snapshot(client)


def test_sync_creates_guests_with_inventory_fields(sim_cluster):
    guests = {g.vmid: g for g in Guest.objects.filter(cluster=sim_cluster).select_related("node")}
    assert {100, 101, 104, 200, 201, 9000} <= set(guests)
    vm = guests[100]
    assert vm.type == "qemu" and vm.node.name == "pve1" and vm.status == "running"
    assert vm.maxmem > 0 and vm.maxcpu > 0
    assert guests[9000].template and guests[9000].status == "stopped"
    assert guests[200].type == "lxc" and guests[104].node.name == "pve3"


def test_no_change_sync_writes_no_guest_rows(sim_cluster):
    snap = snapshot_of(sim_cluster)
    guest_sync(sim_cluster, snap)
    assert writes_during(lambda: guest_sync(sim_cluster, snap)) == []


def test_cpu_and_memory_jitter_is_not_written(sim_cluster):
    snap = snapshot_of(sim_cluster)
    guest_sync(sim_cluster, snap)
    jittered = [dict(r, cpu=(r.get("cpu") or 0) + 0.001, mem=(r.get("mem") or 0) + 4096,
                     uptime=(r.get("uptime") or 0) + 5 if r.get("uptime") else r.get("uptime"))
                if r.get("type") in ("qemu", "lxc") else r for r in snap.resources]
    moved = Snapshot(resources=jittered, status=snap.status, ha_status=snap.ha_status, fetched_at=snap.fetched_at)
    assert writes_during(lambda: guest_sync(sim_cluster, moved)) == []


def test_changed_guest_is_updated_alone_in_one_statement(sim_cluster):
    snap = snapshot_of(sim_cluster)
    guest_sync(sim_cluster, snap)
    renamed = [dict(r, name="renamed", lock="backup") if r.get("vmid") == 101 else r for r in snap.resources]
    changed = guest_sync(sim_cluster, Snapshot(resources=renamed, status=snap.status, ha_status=snap.ha_status,
                                               fetched_at=snap.fetched_at))
    assert [g.vmid for g in changed] == [101]
    guest = Guest.objects.get(cluster=sim_cluster, vmid=101)
    assert guest.name == "renamed" and guest.lock == "backup"


def test_guest_deleted_in_proxmox_disappears_after_sync(sim_cluster, pve):
    assert Guest.objects.filter(cluster=sim_cluster, vmid=104).exists()
    upid = pve.delete("nodes/pve3/qemu/104")
    assert wait_task(pve, upid)["exitstatus"] == "OK"
    sync(sim_cluster)
    assert not Guest.objects.filter(cluster=sim_cluster, vmid=104).exists()
    assert Guest.objects.filter(cluster=sim_cluster, vmid=100).exists()


def test_guest_created_in_proxmox_appears_after_sync(sim_cluster, pve):
    upid = pve.post("nodes/pve2/qemu", vmid=555, name="fresh", memory=1024, cores=2)
    assert wait_task(pve, upid)["exitstatus"] == "OK"
    sync(sim_cluster)
    guest = Guest.objects.get(cluster=sim_cluster, vmid=555)
    assert guest.name == "fresh" and guest.node.name == "pve2" and guest.maxmem == 1024 * 1024 * 1024
