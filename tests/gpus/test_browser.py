"""Browser: the GPU map renders, and follows a vGPU freed on Proxmox without a reload (live push)."""

from pathlib import Path

import pytest

from apps.gpus.services import gpu_inventory_refresh
from apps.nodes.models import Cluster
from apps.nodes.sync import run_cycle
from tests.fixtures import wait_for, wait_task

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"


def test_gpu_map_renders_and_follows_a_freed_vgpu(operator_page, live_server, pve, pvesim):
    cluster = Cluster.objects.create(name="demo", api_url=pvesim.url, token_id=pvesim.token_id,
                                     token_secret=pvesim.token_secret, tls_mode="pin", fingerprint=pvesim.fingerprint)
    assert run_cycle(cluster.pk).ok
    gpu_inventory_refresh(cluster=cluster)
    page = operator_page
    ARTIFACTS.mkdir(exist_ok=True)
    page.set_viewport_size({"width": 1440, "height": 1000})
    page.goto(f"{live_server.url}/gpus/")
    section = page.locator(f"#gpu-map-cluster-{cluster.pk}")
    section.wait_for()
    assert section.locator(".gpu-col").count() == 3
    assert section.locator(".gpu-card").count() == 3
    four_q = section.locator(".gpu-profile", has_text="A16-4Q")
    assert "3 of 4 free" in four_q.inner_text()
    page.screenshot(path=str(ARTIFACTS / "gpus-map.png"), full_page=True)

    # VM 103 stops on Proxmox: its A16-4Q instance is freed; the next refresh pushes the map.
    page.wait_for_function("() => !document.body.classList.contains('live-down')")
    from apps.nodes import presence

    wait_for(lambda: presence.watcher_count(f"gpus-{cluster.pk}") > 0)
    assert wait_task(pve, pve.post("nodes/pve2/qemu/103/status/stop"))["exitstatus"] == "OK"
    result = gpu_inventory_refresh(cluster=cluster)
    assert result.changed["mdev_updated"] >= 1
    page.wait_for_function(
        "() => [...document.querySelectorAll('.gpu-profile')].some(e => e.innerText.includes('A16-4Q')"
        " && e.innerText.includes('4 of 4 free'))")
    page.screenshot(path=str(ARTIFACTS / "gpus-map-vgpu-freed.png"), full_page=True)

    # The node page lists that node's GPUs.
    pve2 = cluster.nodes.get(name="pve2")
    page.goto(f"{live_server.url}/nodes/{pve2.pk}/")
    section = page.locator(f"#node-gpus-{pve2.pk}")
    section.wait_for()
    assert section.locator(".gpu-card").count() == 1 and "NVIDIA A16" in section.inner_text()
    section.screenshot(path=str(ARTIFACTS / "gpus-node-section.png"))
