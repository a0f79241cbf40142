"""GPU API: devices with their vGPU types, mappings, filters, constant query counts, scoping, refresh."""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from tests.fixtures import gpu_inventory

pytestmark = pytest.mark.django_db


@pytest.fixture
def inventoried(sim_cluster):
    gpu_inventory(sim_cluster)  # waits out a refresh the worker may be running
    return sim_cluster


def count_queries(api, url):
    with CaptureQueriesContext(connection) as ctx:
        api.get(url)
    return len(ctx.captured_queries)


def test_gpu_list_with_mdev_types_and_constant_queries(inventoried, api):
    body = api.get("/api/v1/gpus/")
    assert body["count"] == 3
    by_id = {(g["node"], g["pci_id"]): g for g in body["results"]}
    a16 = by_id[("pve2", "0000:81:00.0")]
    assert a16["mode"] == "vgpu" and a16["mappings"] == ["vgpu-a16"] and a16["name"] == "NVIDIA A16"
    four_q = next(t for t in a16["mdev_types"] if t["type"] == "nvidia-747")
    assert four_q == {"type": "nvidia-747", "name": "NVIDIA A16-4Q", "available": 3, "max_instances": 4,
                      "description": four_q["description"]}
    assert by_id[("pve1", "0000:41:00.0")]["mdev_types"] == []
    assert count_queries(api, "/api/v1/gpus/?page_size=1") == count_queries(api, "/api/v1/gpus/?page_size=100")
    assert count_queries(api, "/api/v1/gpu-mappings/?page_size=1") == \
        count_queries(api, "/api/v1/gpu-mappings/?page_size=100")


def test_gpu_filters(inventoried, api):
    def pci_ids(query):
        return sorted(g["pci_id"] for g in api.get(f"/api/v1/gpus/?{query}")["results"])

    assert pci_ids("node=pve1") == ["0000:41:00.0", "0000:c1:00.0"]
    assert pci_ids("mode=vgpu") == ["0000:81:00.0"]
    assert pci_ids("mapping=gpu-l40s") == ["0000:41:00.0", "0000:c1:00.0"]
    assert pci_ids("mdev_type=nvidia-747") == ["0000:81:00.0"]
    ordered = [g["pci_id"] for g in api.get("/api/v1/gpus/?q=l40s&ordering=-pci_id")["results"]]
    assert ordered == ["0000:c1:00.0", "0000:41:00.0"]
    assert pci_ids("stale=true") == []
    body = api.get("/api/v1/gpus/?mode=sideways", expect=400)
    assert "mode" in body["errors"]


def test_mapping_list(inventoried, api):
    body = api.get("/api/v1/gpu-mappings/")
    mappings = {m["mapping_id"]: m for m in body["results"]}
    assert set(mappings) == {"gpu-l40s", "vgpu-a16"}
    assert mappings["vgpu-a16"]["mdev"] is True and len(mappings["gpu-l40s"]["devices"]) == 2
    assert mappings["gpu-l40s"]["map"][1]["path"] == "0000:c1:00.0"
    assert [m["mapping_id"] for m in api.get("/api/v1/gpu-mappings/?node=pve2")["results"]] == ["vgpu-a16"]
    assert [m["mapping_id"] for m in api.get("/api/v1/gpu-mappings/?mdev=false")["results"]] == ["gpu-l40s"]


def test_non_operator_gets_nothing(inventoried, api_for, user):
    from apps.gpus.models import GpuDevice

    member = api_for(user)
    assert member.get("/api/v1/gpus/")["count"] == 0
    assert member.get("/api/v1/gpu-mappings/")["count"] == 0
    member.get(f"/api/v1/gpus/{GpuDevice.objects.first().pk}/", expect=404)
    member.post(f"/api/v1/gpus/refresh/?cluster={inventoried.pk}", expect=404)


def test_refresh_answers_202_or_names_the_field(inventoried, api, monkeypatch):
    from apps.gpus import tasks

    queued = []
    monkeypatch.setattr(tasks.gpu_inventory_refresh, "delay", queued.append)
    body = api.post(f"/api/v1/gpus/refresh/?cluster={inventoried.pk}", expect=202)
    assert body["cluster"] == inventoried.pk and queued == [inventoried.pk]
    assert "cluster" in api.post("/api/v1/gpus/refresh/", expect=400)["errors"]
    assert "cluster" in api.post("/api/v1/gpus/refresh/?cluster=abc", expect=400)["errors"]
    api.post("/api/v1/gpus/refresh/?cluster=999999", expect=404)
    assert len(queued) == 1


@pytest.mark.django_db(transaction=True)
def test_refresh_endpoint_runs_in_the_worker(pve, pvesim, celery_worker, operator):
    from apps.gpus.models import GpuInventory, MdevType
    from apps.nodes.models import Cluster
    from apps.nodes.sync import run_cycle
    from tests.conftest import Api
    from tests.fixtures import wait_for

    cluster = Cluster.objects.create(name="gpu-api", api_url=pvesim.url, token_id=pvesim.token_id,
                                     token_secret=pvesim.token_secret, tls_mode="pin", fingerprint=pvesim.fingerprint)
    assert run_cycle(cluster.pk).ok
    wait_for(lambda: GpuInventory.objects.filter(cluster=cluster, refreshed_at__isnull=False).exists())
    MdevType.objects.filter(device__cluster=cluster).delete()
    Api(operator).post(f"/api/v1/gpus/refresh/?cluster={cluster.pk}", expect=202)
    wait_for(lambda: MdevType.objects.filter(device__cluster=cluster).count() == 3)
