"""Browser: take a snapshot of a running VM, see it appear in the tree live, roll back to it, see
success, all without reloading. Real pvesim, Celery worker, ASGI server, Debian chromium."""

from pathlib import Path

import pytest

from apps.guests.models import Guest
from tests.fixtures import pve, sim_cluster, wait_for  # noqa: F401

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"


def test_take_and_roll_back_a_snapshot_live(operator_page, live_server, sim_cluster, celery_worker, pve):
    page = operator_page
    ARTIFACTS.mkdir(exist_ok=True)
    page.set_viewport_size({"width": 1360, "height": 900})
    vm = Guest.objects.get(cluster=sim_cluster, vmid=101)  # web-02, running
    page.goto(f"{live_server.url}/guests/{vm.pk}/snapshots/")
    tree = page.locator(f"#guest-{vm.pk}-snapshots")
    tree.locator('[data-snapshot="current"]').wait_for()
    page.wait_for_selector("#live[hx-ext]", state="attached")
    page.wait_for_function("() => !document.body.classList.contains('live-down')")
    # The page's own first read of the guest lands (pushed); from here nothing may reload the page.
    wait_for(lambda: Guest.objects.get(pk=vm.pk).details_synced_at, timeout=30)
    page.evaluate("window.__noReload = true")

    page.fill("#snapshot-take input[name=name]", "before-upgrade")
    page.fill("#snapshot-take textarea[name=description]", "web-02 before the 2.0 upgrade")
    page.check("#snapshot-take input[name=vmstate]")
    page.click("#snapshot-take button[type=submit]")
    page.wait_for_selector("#snapshot-operation .operation-status[data-status=succeeded]", timeout=30_000)
    row = tree.locator('[data-snapshot="before-upgrade"]')
    row.wait_for(timeout=30_000)  # pushed over the websocket after the worker re-read the guest
    assert "RAM" in row.inner_text() and "web-02 before the 2.0 upgrade" in row.inner_text()
    assert "based on before-upgrade" in tree.locator('[data-snapshot="current"]').inner_text()
    assert page.input_value("#snapshot-take input[name=name]") == ""  # a fresh form for the next one
    page.screenshot(path=str(ARTIFACTS / "snapshots-taken.png"), full_page=True)

    pve.put("nodes/pve2/qemu/101/config", cores=8)  # a change after the snapshot, undone by the rollback
    taken = page.get_attribute("#snapshot-operation section.operation-progress", "id")
    row.get_by_role("button", name="Roll back").click()
    page.locator("#confirm-dialog #confirm-ok").click()  # the page's own question (confirm.js)
    panel = page.locator(f"#snapshot-operation section.operation-progress:not(#{taken})")
    panel.locator(".operation-status[data-status=succeeded]").wait_for(timeout=30_000)
    assert "Queued: Roll back VM 101 (web-02) to before-upgrade" in panel.inner_text()
    assert ":qmrollback:101:" in panel.inner_text()
    assert pve.get("nodes/pve2/qemu/101/config")["cores"] == 4
    assert page.evaluate("window.__noReload") is True  # all of it swapped in live, no reload
    page.screenshot(path=str(ARTIFACTS / "snapshots-rolled-back.png"), full_page=True)

    # A second branch from the same snapshot: the tree nests both under it, "You are here" under the new one.
    page.fill("#snapshot-take input[name=name]", "after-rollback")
    page.click("#snapshot-take button[type=submit]")
    tree.locator('[data-snapshot="after-rollback"]').wait_for(timeout=30_000)
    depths = tree.locator(".snap-node").evaluate_all(
        "rows => rows.map(r => [r.dataset.snapshot, getComputedStyle(r).getPropertyValue('--depth').trim()])")
    assert depths == [["before-upgrade", "0"], ["after-rollback", "1"], ["current", "2"]]
    assert page.evaluate("window.__noReload") is True
    page.screenshot(path=str(ARTIFACTS / "snapshots-tree.png"), full_page=True)


def test_settings_form_saves_and_shows_a_conflict(operator_page, live_server, sim_cluster, celery_worker, pve):
    """The settings page reads the guest fresh, saves through an operation, and a concurrent change
    made behind its back gives the conflict banner with Proxmox's message (plus page screenshots)."""
    page = operator_page
    page.set_viewport_size({"width": 1360, "height": 1000})
    vm = Guest.objects.get(cluster=sim_cluster, vmid=104)
    page.goto(f"{live_server.url}/guests/{vm.pk}/config/")
    page.wait_for_selector("form#guest-config input[name=digest]", state="attached", timeout=30_000)
    page.screenshot(path=str(ARTIFACTS / "settings-form.png"), full_page=True)
    page.fill("input[name=cores]", "6")
    page.fill("input[name=resize_scsi0]", "120")
    page.click("form#guest-config button[type=submit]")
    page.wait_for_selector("#guest-config .operation-status[data-status=succeeded]", timeout=30_000)
    assert pve.get("nodes/pve3/qemu/104/config")["cores"] == 6
    page.screenshot(path=str(ARTIFACTS / "settings-saved.png"), full_page=True)

    page.click("text=Edit again")
    page.wait_for_selector("form#guest-config input[name=digest]", state="attached", timeout=30_000)
    pve.put("nodes/pve3/qemu/104/config", description="changed by someone else")
    page.fill("input[name=memory]", "4096")
    page.click("form#guest-config button[type=submit]")
    banner = page.locator("#guest-config .banner.conflict")
    banner.wait_for()
    assert "Someone else changed this guest since you opened the form" in banner.inner_text()
    assert "detected modified configuration - file changed by other user? Try again." in banner.inner_text()
    page.screenshot(path=str(ARTIFACTS / "settings-conflict.png"), full_page=True)

    page.goto(f"{live_server.url}/guests/{vm.pk}/")
    page.get_by_role("navigation", name="Guest").get_by_role("link", name="Settings").wait_for()
    page.screenshot(path=str(ARTIFACTS / "guest-overview-tabs.png"))

    page.goto(f"{live_server.url}/guests/{vm.pk}/clone/")
    page.fill("#delete-form input[name=confirm]", "1")
    page.click("#delete-form button[type=submit]")
    page.locator("#confirm-dialog #confirm-ok").click()
    page.locator("#delete-form .error").first.wait_for()
    page.screenshot(path=str(ARTIFACTS / "clone-page.png"), full_page=True)
