"""Browser: choose a vGPU profile in the create wizard (the placement table says why the other
nodes cannot take it), watch the operation, and see the new guest's name inside the A16's card on
the GPU map (open in a second tab) without a reload. No console error."""

from pathlib import Path

import pytest

from apps.gpus import profiles
from apps.gpus.models import GpuDevice
from apps.operations.models import Operation
from apps.storage.models import Storage
from apps.storage.services import storage_content_refresh
from tests.fixtures import gpu_inventory, wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"


def test_wizard_gives_a_vm_a_vgpu_and_the_map_shows_it_live(operator_page, live_server, sim_cluster, celery_worker,
                                                            operator, pve):
    for storage in Storage.objects.filter(cluster=sim_cluster):
        storage_content_refresh(storage=storage)
    gpu_inventory(sim_cluster)  # waits out a refresh the worker may be running
    a16 = GpuDevice.objects.get(cluster=sim_cluster, node__name="pve2")
    four_q = profiles.gpu_profile_save(user=operator, cluster=sim_cluster, data={
        "name": "A16 4Q vGPU", "kind": "mdev", "mdev_type": "nvidia-747", "devices": [a16.pk],
        "mapping_id": "vgpu-a16"})
    ARTIFACTS.mkdir(exist_ok=True)
    errors = []
    wizard = operator_page
    map_page = wizard.context.new_page()
    for page in (wizard, map_page):
        page.on("console", lambda msg: msg.type == "error" and errors.append(msg.text))
        page.on("pageerror", lambda exc: errors.append(str(exc)))

    # The GPU map, open beside the wizard: it must follow without a reload.
    map_page.set_viewport_size({"width": 1440, "height": 1000})
    map_page.goto(f"{live_server.url}/gpus/")
    card = map_page.locator('.gpu-card[data-pci-id="0000:81:00.0"]')
    card.wait_for()
    assert "free" in card.locator(".gpu-holders").inner_text()
    map_page.wait_for_function("() => !document.body.classList.contains('live-down')")
    from apps.nodes import presence

    wait_for(lambda: presence.watcher_count(f"gpus-{sim_cluster.pk}") > 0)
    map_page.evaluate("window.__noReload = true")

    wizard.set_viewport_size({"width": 1360, "height": 900})
    wizard.goto(f"{live_server.url}/guests/create/vm/")
    wizard.check("input[name=source][value=iso]")
    wizard.select_option("select[name=iso]", "nfs-store:iso/debian-13.1.0-amd64-netinst.iso")
    wizard.click("button[value=next]")
    wizard.wait_for_selector('.stepper li.current:has-text("Hardware")')
    wizard.fill("input[name=name]", "vdi-21")
    wizard.select_option("select[name=storage]", "ceph-rbd")
    wizard.fill("input[name=disk_size]", "10")
    wizard.click("button[value=next]")
    wizard.wait_for_selector('.stepper li.current:has-text("Cloud-init")')
    wizard.click("button[value=next]")
    wizard.wait_for_selector('.stepper li.current:has-text("Placement")')
    # The GPU choice says how many places are free; picking it sends the VM where one is.
    option = wizard.locator(f"select[name=gpu_profile] option[value='{four_q.pk}']")
    assert "A16 4Q vGPU — 4 free" in option.inner_text()
    # The step came in by an htmx swap: pick only once htmx has bound the re-plan trigger to it
    # (a change event before that is lost, as a person's could not be: they are slower than a swap).
    wizard.wait_for_function("() => !!document.querySelector('.placement-body')?.['htmx-internal-data']"
                             " && !document.querySelector('.htmx-request')")
    wizard.select_option("select[name=gpu_profile]", str(four_q.pk))
    # The choice re-plans the step: the node table says, per node, why it cannot take it.
    refused = wizard.locator('#placement-nodes tr[data-node="pve1"]')
    refused.filter(has_text="pve1 has no card of A16 4Q vGPU").wait_for()
    assert "4 free A16 4Q vGPU" in wizard.locator('#placement-nodes tr[data-node="pve2"]').inner_text()
    wizard.screenshot(path=str(ARTIFACTS / "gpu-wizard-placement.png"), full_page=True)
    wizard.click("button[value=next]")
    wizard.wait_for_selector('.stepper li.current:has-text("Review")')
    review = wizard.locator("dl.review").inner_text()
    assert "A16 4Q vGPU: pve2 (4 free)" in review and "pve2" in review
    wizard.click("button[value=create]")
    wizard.locator("section.operation-progress").wait_for()
    operation = Operation.objects.get(kind="guest.create")
    wizard.wait_for_function(f"() => document.querySelector('#operation-{operation.pk}-status')"
                             f".dataset.status === 'succeeded'", timeout=60_000)

    # The map's A16 card names the new guest, pushed while the page stayed open.
    map_page.wait_for_function(
        "() => document.querySelector('.gpu-card[data-pci-id=\"0000:81:00.0\"] .gpu-holders')"
        "?.innerText.includes('vdi-21')", timeout=30_000)
    assert map_page.evaluate("window.__noReload") is True
    holder = card.locator(".gpu-holder", has_text="vdi-21")
    assert holder.count() == 1
    map_page.screenshot(path=str(ARTIFACTS / "gpu-map-holder.png"), full_page=True)
    operation.refresh_from_db()
    config = pve.get(f"nodes/pve2/qemu/{operation.result['vmid']}/config")
    assert config["hostpci0"] == "mapping=vgpu-a16,mdev=nvidia-747,pcie=1"
    assert errors == []
