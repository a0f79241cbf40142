"""GPU page: the map (a column per node, a card per GPU, profile bars), the table, node detail."""

import pytest

from apps.gpus.models import GpuDevice
from apps.gpus.services import gpu_inventory_refresh

pytestmark = pytest.mark.django_db


@pytest.fixture
def inventoried(sim_cluster):
    gpu_inventory_refresh(cluster=sim_cluster)
    return sim_cluster


def test_page_renders_the_map_and_the_table(inventoried, client):
    response = client.get("/gpus/")
    assert response.status_code == 200
    html = response.content.decode()
    assert f'id="gpu-map-cluster-{inventoried.pk}"' in html
    assert html.count('class="gpu-col"') == 3  # pve3 has a column too, with "No GPUs"
    assert html.count('<article class="gpu-card') == 3
    assert "No GPUs" in html and "NVIDIA L40S" in html and "NVIDIA A16-4Q" in html
    assert "<b>3</b> of 4 free" in html  # VM 103 holds one A16-4Q
    assert "gpu-l40s" in html and "vgpu-a16" in html and "0000:41:00.0" in html
    assert 'id="object-table"' in html and f"gpus-{inventoried.pk}" in html  # table + live group


def test_table_filters_and_partial(inventoried, client):
    partial = client.get("/gpus/?mode=vgpu", HTTP_HX_REQUEST="true").content.decode()
    assert "<html" not in partial and 'id="object-table"' in partial
    assert "0000:81:00.0" in partial and "0000:41:00.0" not in partial
    html = client.get("/gpus/?node=pve1&sort=-iommugroup").content.decode()
    table = html.split('id="object-table"', 1)[1]
    assert table.index("0000:c1:00.0") < table.index("0000:41:00.0")


def test_node_detail_shows_its_gpus(inventoried, client):
    pve1 = inventoried.nodes.get(name="pve1")
    html = client.get(f"/nodes/{pve1.pk}/").content.decode()
    assert f'id="node-gpus-{pve1.pk}"' in html and html.count('<article class="gpu-card') == 2
    pve3 = inventoried.nodes.get(name="pve3")
    assert "No GPUs found on this node." in client.get(f"/nodes/{pve3.pk}/").content.decode()


def test_refresh_button_queues_a_refresh(inventoried, client, monkeypatch):
    from apps.gpus import tasks

    queued = []
    monkeypatch.setattr(tasks.gpu_inventory_refresh, "delay", queued.append)
    response = client.post("/gpus/refresh/", {"cluster": inventoried.pk}, HTTP_HX_REQUEST="true")
    assert response.status_code == 200 and "Refresh queued" in response.content.decode()
    assert queued == [inventoried.pk]
    assert client.post("/gpus/refresh/", {"cluster": 999999}).status_code == 404


def test_stale_gpus_show_as_stale(inventoried, client):
    GpuDevice.objects.filter(node__name="pve1").update(stale=True)
    html = client.get("/gpus/").content.decode()
    assert html.count("gpu-card gpu-passthrough is-stale") == 2 and "Node not answering" in html


def test_pages_are_empty_for_non_operators(inventoried, user_client):
    html = user_client.get("/gpus/").content.decode()
    assert "NVIDIA L40S" not in html and "gpu-map-cluster" not in html
    assert user_client.post("/gpus/refresh/", {"cluster": inventoried.pk}).status_code == 404
