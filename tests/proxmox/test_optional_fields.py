"""The portal relies only on what Proxmox promises: each test here runs against the full pvesim and
against `pvesim --sparse` (every field the official schema marks optional dropped, the LXC
migration precheck absent), and asserts what the portal must know either way."""

import pytest

from apps.gpus.models import GpuDevice, MdevType
from apps.gpus.services import gpu_inventory_refresh
from apps.guests.models import Guest
from apps.nodes.models import Cluster, Node
from apps.proxmox import cluster as pve_cluster
from apps.proxmox import guests as pve_guests
from apps.proxmox.client import exitstatus_from_log
from apps.proxmox.refs import GuestRef
from apps.storage.models import Storage, StorageContent
from apps.storage.services import storage_content_refresh

from tests.fixtures import pve, sim_cluster  # noqa: F401

pytestmark = [pytest.mark.django_db, pytest.mark.sparse]


def test_sync_knows_nodes_guests_and_their_placement(sim_cluster):
    nodes = {n.name: n for n in Node.objects.filter(cluster=sim_cluster)}
    assert set(nodes) == {"pve1", "pve2", "pve3"} and all(n.status == "online" for n in nodes.values())
    assert Cluster.objects.get(pk=sim_cluster.pk).quorate is True
    guests = {g.vmid: g for g in Guest.objects.filter(cluster=sim_cluster).select_related("node")}
    assert guests[100].type == "qemu" and guests[100].node.name == "pve1" and guests[100].status == "running"
    assert guests[201].type == "lxc" and guests[201].node_id is not None
    assert guests[104].node.name == "pve3"


def test_storage_rows_and_backups_with_their_guest(sim_cluster):
    local = {s.node.name for s in Storage.objects.filter(cluster=sim_cluster, storage="local").select_related("node")}
    assert local == {"pve1", "pve2", "pve3"}
    nfs = Storage.objects.filter(cluster=sim_cluster, storage="nfs-store").first()
    assert nfs is not None and "backup" in nfs.content and nfs.type == "nfs"
    storage_content_refresh(storage=nfs)
    backup = StorageContent.objects.get(storage=nfs, volid="nfs-store:backup/vzdump-qemu-101-2026_11_20-02_00_04.vma.zst")
    assert backup.content == "backup" and backup.vmid == 101 and backup.ctime is not None


def test_gpu_refresh_finds_devices_and_vgpu_profiles(sim_cluster):
    result = gpu_inventory_refresh(cluster=sim_cluster)
    assert not result.errors
    found = set(GpuDevice.objects.filter(cluster=sim_cluster).values_list("node__name", "pci_id"))
    assert found == {("pve1", "0000:41:00.0"), ("pve1", "0000:c1:00.0"), ("pve2", "0000:81:00.0")}
    a16 = GpuDevice.objects.get(cluster=sim_cluster, pci_id="0000:81:00.0")
    # Proxmox flags mdev support only where it exists (`mdev` is optional): no flag, no profile read.
    profiles = set(MdevType.objects.filter(device=a16).values_list("type", flat=True))
    assert profiles == ({"nvidia-745", "nvidia-747", "nvidia-749"} if a16.mdev_capable else set())


def test_container_precheck_falls_back_to_the_online_nodes(pve):
    ct = pve_cluster.find_guest(pve, 201)
    check = pve_guests.migrate_precheck(pve, GuestRef(ct["node"], "lxc", 201))
    if check.available:  # full pvesim: Proxmox names the targets
        assert check.allowed_nodes is not None
    else:  # no precheck on this node (PVE < 9.0, or sparse): the portal decides with the online nodes
        assert check.allowed_nodes is None and check.running is None


def test_task_exit_status_is_read_from_the_log_when_missing():
    assert exitstatus_from_log([{"n": 1, "t": "starting"}, {"n": 2, "t": "TASK OK"}]) == "OK"
    assert exitstatus_from_log([{"n": 1, "t": "TASK WARNINGS: 2"}]) == "WARNINGS: 2"
    assert exitstatus_from_log([{"n": 1, "t": "TASK ERROR: VM 100 already running"}]) == "VM 100 already running"
    assert exitstatus_from_log([]) == "unexpected status"
