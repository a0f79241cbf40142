"""Browser: deleting a replication job asks first through the page's confirm dialog, naming the job
and the guest, and the HA page shows the job gone without a reload; a guest's HA panel follows the
guest being put under HA behind the portal's back, without a reload. No console errors."""

from pathlib import Path

import pytest

from apps.guests.models import Guest
from apps.ha.models import ReplicationJob
from apps.ha.services import ha_refresh
from apps.operations.models import Operation
from apps.proxmox import ha as pve_ha
from tests.e2e.test_dashboard import beat, demo_cluster  # noqa: F401  (fixtures)
from tests.fixtures import pve_client

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"


def watch_console(page) -> list[str]:
    errors = []
    page.on("console", lambda msg: msg.type == "error" and errors.append(msg.text))
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    return errors


def live_open(page) -> None:
    page.wait_for_selector("#live[hx-ext]", state="attached")
    page.wait_for_function("() => !document.body.classList.contains('live-down')")
    page.evaluate("window.__noReload = true")


def test_delete_asks_naming_job_and_guest_then_the_page_updates(operator_page, live_server, demo_cluster,  # noqa: F811
                                                                celery_worker, pvesim):
    ARTIFACTS.mkdir(exist_ok=True)
    page = operator_page
    errors = watch_console(page)
    ha_refresh(cluster=demo_cluster)
    job = ReplicationJob.objects.get(cluster=demo_cluster, job_id="201-0")
    page.set_viewport_size({"width": 1360, "height": 1000})
    page.goto(f"{live_server.url}/ha/")
    live_open(page)
    row = page.locator(f"#replication-job-{job.pk}")
    row.locator("button.danger", has_text="Delete").click()
    dialog = page.locator("dialog[open]")
    dialog.wait_for()
    text = dialog.inner_text()
    assert "Delete replication job 201-0" in text and "CT 201 proxy-01" in text and "pve3 → pve1" in text
    page.screenshot(path=str(ARTIFACTS / "ha-replication-delete-confirm.png"), full_page=False)
    dialog.get_by_role("button", name="Cancel").click()
    assert not Operation.objects.exists()  # asked, not done

    row.locator("button.danger", has_text="Delete").click()
    page.locator("dialog[open]").get_by_role("button", name="Delete job").click()
    page.wait_for_selector("#ha-operation .operation-progress")
    # The operation re-reads the jobs and pushes the page: the row goes without a reload.
    page.wait_for_selector(f"#replication-job-{job.pk}", state="detached", timeout=60_000)
    assert Operation.objects.get().kind == "ha.replication_delete"
    assert [j["id"] for j in pve_ha.replication_jobs(pve_client(pvesim))] == []
    assert page.evaluate("window.__noReload") is True
    page.screenshot(path=str(ARTIFACTS / "ha-replication-deleted.png"), full_page=True)
    assert errors == []


def test_guest_ha_panel_follows_ha_without_reload(operator_page, live_server, demo_cluster, beat, pvesim):  # noqa: F811
    page = operator_page
    errors = watch_console(page)
    guest = Guest.objects.get(cluster=demo_cluster, vmid=101)
    page.set_viewport_size({"width": 1360, "height": 1000})
    page.goto(f"{live_server.url}{guest.get_absolute_url()}")
    panel = f"#guest-{guest.pk}-ha"
    assert "Not under HA" in page.inner_text(panel)
    live_open(page)
    pve = pve_client(pvesim)
    pve_ha.resource_add(pve, "vm:101", state="started", max_restart=2)  # behind the portal's back
    page.wait_for_function(f"() => document.querySelector('{panel}').textContent.includes('vm:101 on pve2')",
                           timeout=45_000)
    text = page.inner_text(panel)
    assert "Not under HA" not in text and "Restart / relocate" in text and "2 / " in text
    assert page.locator(f"{panel} button", has_text="Remove from HA").count() == 1  # the operator's actions
    assert page.evaluate("window.__noReload") is True
    page.screenshot(path=str(ARTIFACTS / "guest-ha-panel-live.png"), full_page=True)
    assert errors == []
