"""GPU inventory refresh against pvesim over HTTPS: devices, vGPU profiles, mappings, call budget."""

import pytest

from apps.gpus.models import GpuDevice, GpuInventory, MdevType, PciMapping
from apps.gpus.services import gpu_inventory_refresh, parse_map_entry

from tests.fixtures import sync, wait_for, writes_during

pytestmark = pytest.mark.django_db

PCI = "/nodes/{node}/hardware/pci"
MDEV = "/nodes/{node}/hardware/pci/{pci-id-or-mapping}/mdev"
MAPPING = "/cluster/mapping/pci"


def gpu_calls(pvesim) -> dict[str, int]:
    return {r["path"]: r["count"] for r in pvesim.admin("GET", "/counters")["requests"]
            if r["path"] in (PCI, MDEV, MAPPING)}


def test_refresh_creates_l40s_on_pve1_a16_profiles_on_pve2_and_mappings(sim_cluster):
    result = gpu_inventory_refresh(cluster=sim_cluster)
    assert not result.errors and not result.skipped
    gpus = {(g.node.name, g.pci_id): g for g in GpuDevice.objects.filter(cluster=sim_cluster).select_related("node")}
    # Only display-class devices: the NVMe, NIC, USB and SMBus controllers stay out.
    assert set(gpus) == {("pve1", "0000:41:00.0"), ("pve1", "0000:c1:00.0"), ("pve2", "0000:81:00.0")}
    l40s = gpus[("pve1", "0000:41:00.0")]
    assert l40s.name == "NVIDIA L40S" and l40s.mode == "passthrough" and l40s.iommugroup == 40
    assert l40s.pci_class == "0x030000" and l40s.vendor_id == "0x10de" and not l40s.mdev_capable
    a16 = gpus[("pve2", "0000:81:00.0")]
    assert a16.name == "NVIDIA A16" and a16.mode == "vgpu" and a16.mdev_capable
    profiles = {t.type: t for t in MdevType.objects.filter(device=a16)}
    assert set(profiles) == {"nvidia-745", "nvidia-747", "nvidia-749"}
    # VM 103 runs on an A16-4Q: 3 of 4 left, and the other profiles are closed (one profile per GPU).
    assert (profiles["nvidia-747"].name, profiles["nvidia-747"].available, profiles["nvidia-747"].max_instances) \
        == ("NVIDIA A16-4Q", 3, 4)
    assert profiles["nvidia-745"].available == 0 and profiles["nvidia-749"].available == 0
    assert not MdevType.objects.filter(device=l40s).exists()
    mappings = {m.mapping_id: m for m in PciMapping.objects.filter(cluster=sim_cluster)}
    assert set(mappings) == {"gpu-l40s", "vgpu-a16"}
    assert {d.pci_id for d in mappings["gpu-l40s"].devices.all()} == {"0000:41:00.0", "0000:c1:00.0"}
    assert list(mappings["vgpu-a16"].devices.all()) == [a16] and mappings["vgpu-a16"].mdev
    assert mappings["gpu-l40s"].map[0] == {"node": "pve1", "path": "0000:41:00.0", "id": "10de:26b9",
                                           "subsystem-id": "10de:1851", "iommugroup": "40"}
    assert GpuInventory.objects.get(cluster=sim_cluster).refreshed_at is not None


def test_second_refresh_without_change_writes_only_the_inventory_stamp(sim_cluster):
    gpu_inventory_refresh(cluster=sim_cluster)
    result = None

    def again():
        nonlocal result
        result = gpu_inventory_refresh(cluster=sim_cluster)

    writes = writes_during(again)
    assert result.total_changes == 0
    assert len(writes) == 1 and writes[0].lstrip().startswith('UPDATE "gpus_gpuinventory"'), writes


def test_calls_per_refresh_one_pci_per_online_node_one_mdev_per_vgpu_one_mapping(sim_cluster, pvesim):
    pvesim.admin("DELETE", "/counters")
    result = gpu_inventory_refresh(cluster=sim_cluster)
    assert gpu_calls(pvesim) == {PCI: 3, MDEV: 1, MAPPING: 1}
    assert result.calls == {"GET /nodes/{node}/hardware/pci": 3, "GET /nodes/{node}/hardware/pci/{id}/mdev": 1,
                            "GET /cluster/mapping/pci": 1}
    assert pvesim.admin("GET", "/counters")["total"] == 5  # nothing else either


def test_sync_cycle_makes_no_gpu_call(sim_cluster, pvesim):
    pvesim.admin("DELETE", "/counters")
    sync(sim_cluster)
    assert gpu_calls(pvesim) == {}


def test_offline_node_keeps_its_gpus_marked_stale(sim_cluster, pvesim):
    gpu_inventory_refresh(cluster=sim_cluster)
    pvesim.admin("POST", "/local-node", node="pve2")  # pve1 answers the API in the demo: ask pve2
    pvesim.admin("POST", "/nodes/pve1/power", state="off")
    sync(sim_cluster)
    pvesim.admin("DELETE", "/counters")
    result = gpu_inventory_refresh(cluster=sim_cluster)
    assert gpu_calls(pvesim) == {PCI: 2, MDEV: 1, MAPPING: 1}  # offline pve1 is not asked
    assert result.changed["devices_stale"] == 2 and result.changed["devices_deleted"] == 0
    pve1 = GpuDevice.objects.filter(cluster=sim_cluster, node__name="pve1")
    assert pve1.count() == 2 and all(g.stale and g.last_seen for g in pve1)
    assert not GpuDevice.objects.get(node__name="pve2").stale
    # Mappings still point at the stale devices: they come back as they were.
    assert PciMapping.objects.get(mapping_id="gpu-l40s").devices.count() == 2
    pvesim.admin("POST", "/nodes/pve1/power", state="on")
    wait_for(lambda: sync(sim_cluster) and sim_cluster.nodes.get(name="pve1").status == "online", timeout=60)
    result = gpu_inventory_refresh(cluster=sim_cluster)
    assert result.changed["devices_updated"] == 2
    assert not GpuDevice.objects.filter(stale=True).exists()


def test_sync_handler_queues_a_refresh_only_when_due(sim_cluster, django_capture_on_commit_callbacks, monkeypatch):
    from apps.gpus import services

    queued = []
    monkeypatch.setattr(services, "gpu_refresh_enqueue", lambda **kw: queued.append(kw))
    with django_capture_on_commit_callbacks(execute=True):
        sync(sim_cluster)
    assert queued == [{"cluster_id": sim_cluster.pk}]  # never inventoried
    gpu_inventory_refresh(cluster=sim_cluster)
    with django_capture_on_commit_callbacks(execute=True):
        sync(sim_cluster)
    assert len(queued) == 1  # fresh: nothing queued
    GpuInventory.objects.filter(cluster=sim_cluster).update(nodes_seen=["pve1", "pve2"])
    with django_capture_on_commit_callbacks(execute=True):
        sync(sim_cluster)
    assert len(queued) == 2  # pve3 is online but the last refresh did not see it
    from datetime import timedelta

    from django.utils import timezone

    from apps.nodes import presence

    GpuInventory.objects.filter(cluster=sim_cluster).update(nodes_seen=["pve1", "pve2", "pve3"],
                                                            refreshed_at=timezone.now() - timedelta(days=1))
    with django_capture_on_commit_callbacks(execute=True):
        sync(sim_cluster)
    assert len(queued) == 2  # old, but nobody looks: no read for nobody
    presence.watch([f"cluster-{sim_cluster.pk}"], "tests.gpu-refresh")
    try:
        with django_capture_on_commit_callbacks(execute=True):
            sync(sim_cluster)
    finally:
        presence.watch([f"cluster-{sim_cluster.pk}"], "tests.gpu-refresh", present=False)
    assert len(queued) == 3  # old and someone looks


def test_parse_map_entry_keeps_path_alternatives():
    assert parse_map_entry("node=pve1,path=0000:01:00.4;0000:01:00.5,id=10de:2236") == {
        "node": "pve1", "path": "0000:01:00.4;0000:01:00.5", "id": "10de:2236"}


@pytest.mark.django_db(transaction=True)
def test_first_sync_triggers_the_refresh_in_a_worker(pve, pvesim, celery_worker):
    from apps.nodes.models import Cluster
    from apps.nodes.sync import run_cycle

    cluster = Cluster.objects.create(name="gpu-first", api_url=pvesim.url, token_id=pvesim.token_id,
                                     token_secret=pvesim.token_secret, tls_mode="pin", fingerprint=pvesim.fingerprint)
    assert run_cycle(cluster.pk).ok
    wait_for(lambda: GpuInventory.objects.filter(cluster=cluster, refreshed_at__isnull=False).exists())
    assert GpuDevice.objects.filter(cluster=cluster).count() == 3
    assert PciMapping.objects.filter(cluster=cluster).count() == 2


def test_unreachable_cluster_keeps_everything_stale_and_records_the_error(sim_cluster, client):
    from tests.conftest import free_port

    gpu_inventory_refresh(cluster=sim_cluster)
    sim_cluster.api_url = f"https://127.0.0.1:{free_port()}"
    result = gpu_inventory_refresh(cluster=sim_cluster)
    assert len(result.errors) == 4  # three nodes and the mapping list
    assert GpuDevice.objects.filter(cluster=sim_cluster, stale=True).count() == 3
    assert PciMapping.objects.filter(cluster=sim_cluster).count() == 2
    assert MdevType.objects.filter(device__cluster=sim_cluster).count() == 3
    inventory = GpuInventory.objects.get(cluster=sim_cluster)
    assert "pve1:" in inventory.error and inventory.nodes_seen == []
    assert "Last refresh: pve1:" in client.get("/gpus/").content.decode()


def test_beat_task_queues_one_refresh_per_watched_cluster(sim_cluster, monkeypatch):
    from apps.gpus import services, tasks
    from apps.nodes import presence

    queued = []
    monkeypatch.setattr(services, "gpu_refresh_enqueue", lambda **kw: queued.append(kw))
    assert tasks.gpu_inventory_refresh_all() == 0 and queued == []  # nobody looks: no read for nobody
    presence.watch([services.live_group(sim_cluster.pk)], "tests.gpu-map")  # the GPU map is open
    try:
        assert tasks.gpu_inventory_refresh_all() == 1
    finally:
        presence.watch([services.live_group(sim_cluster.pk)], "tests.gpu-map", present=False)
    assert queued == [{"cluster_id": sim_cluster.pk, "force": True}]
