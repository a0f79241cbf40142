"""Browser: create a VM with the wizard and watch its progress panel reach 100 % without a reload.
Real pvesim over HTTPS, a real Celery worker, the ASGI server (HTTP + websocket), Debian chromium."""

from pathlib import Path

import pytest

from apps.guests.models import Guest
from apps.operations.models import Operation
from apps.storage.models import Storage
from apps.storage.services import storage_content_refresh
from tests.fixtures import pve, sim_cluster, wait_for  # noqa: F401  (fixtures)

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl alice@laptop"


@pytest.fixture
def inventory(sim_cluster):  # noqa: F811
    for storage in Storage.objects.filter(cluster=sim_cluster):
        storage_content_refresh(storage=storage)
    return sim_cluster


def shot(page, name):
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"create-{name}.png"), full_page=True)


def current_step(page) -> str:
    return page.locator(".stepper li.current").inner_text()


def test_create_vm_from_template_with_the_wizard(operator_page, live_server, inventory, celery_worker, pve):  # noqa: F811
    page = operator_page
    page.set_viewport_size({"width": 1360, "height": 900})
    page.goto(f"{live_server.url}/guests/create/vm/")
    assert "Source" in current_step(page)
    # Source: clone the cloud template, full copy.
    page.check("input[name=source][value=template]")
    page.select_option("select[name=template]", "9000")
    page.check("input[name=clone][value=full]")
    shot(page, "1-source")
    page.click("button[value=next]")
    page.wait_for_selector('.stepper li.current:has-text("Hardware")')
    # Hardware: a bad name first -> the field error, the step stays.
    page.fill("input[name=name]", "web_01!")
    page.fill("input[name=memory]", "4096")
    page.fill("input[name=cores]", "4")
    page.select_option("select[name=storage]", "ceph-rbd")
    page.fill("input[name=disk_size]", "16")
    page.click("button[value=next]")
    page.wait_for_selector(".field.has-error >> text=must be a DNS name")
    assert page.locator(".field.has-error").count() == 1  # only the name is wrong
    shot(page, "2-hardware-error")
    page.fill("input[name=name]", "web-07")
    page.click("button[value=next]")
    page.wait_for_selector('.stepper li.current:has-text("Cloud-init")')
    # Cloud-init: ticked for templates; static address.
    assert page.is_checked("input[name=cloudinit]")
    page.fill("input[name=ci_user]", "deploy")
    page.fill("textarea[name=ssh_keys]", KEY)
    page.check("input[name=ip_mode][value=static]")
    page.fill("input[name=ip]", "10.20.0.77/24")
    page.fill("input[name=gateway]", "10.20.0.1")
    page.fill("input[name=nameservers]", "10.20.0.2")
    shot(page, "3-cloudinit")
    page.click("button[value=next]")
    page.wait_for_selector('.stepper li.current:has-text("Placement")')
    shot(page, "4-placement")
    page.click("button[value=next]")
    page.wait_for_selector('.stepper li.current:has-text("Review")')
    review = page.locator("dl.review").inner_text()
    assert "full clone of template 9000" in review and "ip=10.20.0.77/24,gw=10.20.0.1" in review
    page.fill("input[name=tags]", "web")
    page.check("input[name=start]")
    shot(page, "5-review")
    page.click("button[value=create]")
    # The progress panel replaces the wizard and follows the operation over the websocket.
    panel = page.locator("section.operation-progress")
    panel.wait_for()
    operation = Operation.objects.get(kind="guest.create")
    status = page.locator(f"#operation-{operation.pk}-status")
    page.wait_for_function(f"() => document.querySelector('#operation-{operation.pk}-status')"
                           f".dataset.status === 'running'", timeout=30_000)
    shot(page, "6-progress")
    page.wait_for_function(f"() => document.querySelector('#operation-{operation.pk}-status')"
                           f".dataset.status === 'succeeded'", timeout=60_000)
    assert "100%" in status.inner_text()
    assert page.locator(f"#operation-{operation.pk}-events li").count() > 5  # clone lines streamed in
    shot(page, "7-done")
    operation.refresh_from_db()
    vmid = operation.result["vmid"]
    guest = Guest.objects.get(pk=operation.result["guest"])
    assert guest.name == "web-07" and guest.status == "running"
    # The finished panel links to the new guest.
    link = page.locator(f"#operation-{operation.pk}-status a.operation-created")
    assert link.get_attribute("href") == guest.get_absolute_url() and "web-07" in link.inner_text()
    config = pve.get(f"nodes/{guest.node.name}/qemu/{vmid}/config")
    assert config["ipconfig0"] == "ip=10.20.0.77/24,gw=10.20.0.1" and config["ciuser"] == "deploy"


def test_create_container_with_the_wizard(operator_page, live_server, inventory, celery_worker, pve):  # noqa: F811
    page = operator_page
    page.set_viewport_size({"width": 1360, "height": 900})
    page.goto(f"{live_server.url}/guests/create/ct/")
    page.select_option("select[name=ostemplate]", "nfs-store:vztmpl/debian-12-standard_12.7-1_amd64.tar.zst")
    page.click("button[value=next]")
    page.wait_for_selector('.stepper li.current:has-text("Resources")')
    page.fill("input[name=hostname]", "cache-07")
    page.select_option("select[name=storage]", "ceph-rbd")
    page.check("input[name=nesting]")
    shot(page, "ct-1-resources")
    page.click("button[value=next]")
    page.wait_for_selector('.stepper li.current:has-text("Network")')
    page.fill("input[name=password]", "correct-horse-battery")
    page.click("button[value=next]")
    page.wait_for_selector('.stepper li.current:has-text("Placement")')
    page.click("button[value=next]")
    page.wait_for_selector('.stepper li.current:has-text("Review")')
    page.click("button[value=create]")
    operation = wait_for(lambda: Operation.objects.filter(kind="guest.create").first())
    page.wait_for_function(f"() => (document.querySelector('#operation-{operation.pk}-status') || {{dataset: {{}}}})"
                           f".dataset.status === 'succeeded'", timeout=60_000)
    shot(page, "ct-2-done")
    operation.refresh_from_db()
    assert Guest.objects.get(pk=operation.result["guest"]).type == "lxc"
