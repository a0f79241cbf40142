"""Browser: migrate a running VM from its page and watch the percentage move live, without a reload.
Real pvesim (its clock slowed so the migration lasts a few seconds), Celery worker, ASGI server."""

from pathlib import Path

import pytest

from apps.guests.models import Guest
from apps.operations.models import Operation
from tests.fixtures import pve, sim_cluster  # noqa: F401  (fixtures)

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"

# Records every percentage the progress panel shows (the panel's nodes are swapped, so watch the page).
WATCH_PERCENT = """() => {
  window.__seen = [];
  const note = () => document.querySelectorAll('.operation-percent').forEach(el => {
    const v = parseInt(el.textContent, 10);
    if (!Number.isNaN(v) && window.__seen[window.__seen.length - 1] !== v) window.__seen.push(v);
  });
  new MutationObserver(note).observe(document.body, {subtree: true, childList: true, characterData: true});
  note();
}"""


@pytest.fixture
def slow_clock(pvesim):
    pvesim.admin("POST", "/time-scale", scale=3.0)
    yield
    pvesim.admin("POST", "/time-scale", scale=pvesim.time_scale)


def test_migrate_a_running_vm_and_watch_the_percentage(operator_page, live_server, sim_cluster, celery_worker,
                                                      slow_clock):
    page = operator_page
    ARTIFACTS.mkdir(exist_ok=True)
    page.set_viewport_size({"width": 1360, "height": 900})
    vm = Guest.objects.get(cluster=sim_cluster, vmid=101)
    page.goto(f"{live_server.url}/guests/{vm.pk}/")
    page.evaluate("window.__noReload = true")

    page.get_by_role("button", name="Migrate…").click()
    dialog = page.locator("#migrate-dialog")
    dialog.wait_for()
    assert "Live migration" in dialog.inner_text()
    assert dialog.locator('input[name=target][value="pve1"]').is_enabled()
    dialog.locator('label[data-node="pve3"]').click()
    page.screenshot(path=str(ARTIFACTS / "migrate-dialog.png"), full_page=True)

    page.evaluate(WATCH_PERCENT)
    dialog.get_by_role("button", name="Migrate").click()
    page.wait_for_selector("#migrate-dialog .operation-progress")
    page.wait_for_function("() => (window.__seen || []).some(v => v > 0 && v < 100)", timeout=30_000)
    page.screenshot(path=str(ARTIFACTS / "migrate-progress.png"), full_page=True)
    page.wait_for_selector('#migrate-dialog .operation-status[data-status="succeeded"]', timeout=60_000)
    page.screenshot(path=str(ARTIFACTS / "migrate-succeeded.png"), full_page=True)

    seen = page.evaluate("window.__seen")
    intermediate = {v for v in seen if 0 < v < 100}
    assert len(intermediate) >= 2, seen
    assert seen[-1] == 100 and seen == sorted(seen), seen
    assert page.evaluate("window.__noReload") is True  # every step came over the websocket
    assert "now runs on pve3" in page.locator("#migrate-dialog").inner_text()
    # The details block was told it is stale and reloaded itself: the summary names the new node.
    page.locator(f"#guest-{vm.pk}-details").get_by_role("link", name="pve3", exact=True).wait_for(timeout=30_000)
    op = Operation.objects.get(kind="guest.migrate")
    assert op.status == "succeeded"
    assert Guest.objects.get(pk=vm.pk).node.name == "pve3"


def test_migrate_dialog_explains_refused_nodes(operator_page, live_server, sim_cluster):
    page = operator_page
    ARTIFACTS.mkdir(exist_ok=True)
    page.set_viewport_size({"width": 1360, "height": 900})
    vm = Guest.objects.get(cluster=sim_cluster, vmid=102)
    page.goto(f"{live_server.url}/guests/{vm.pk}/")
    page.get_by_role("button", name="Migrate…").click()
    dialog = page.locator("#migrate-dialog")
    dialog.wait_for()
    assert "mapped device hostpci0 (gpu-l40s) has no mapping there" in dialog.inner_text()
    assert dialog.get_by_role("button", name="Migrate").is_disabled()
    page.screenshot(path=str(ARTIFACTS / "migrate-refused.png"), full_page=True)


def test_back_up_from_the_backups_page_and_see_it_listed(operator_page, live_server, sim_cluster, celery_worker):
    """The backups page: back up now with a live percentage, then the restore dialog (screenshots)."""
    page = operator_page
    ARTIFACTS.mkdir(exist_ok=True)
    page.set_viewport_size({"width": 1360, "height": 900})
    vm = Guest.objects.get(cluster=sim_cluster, vmid=101)
    page.goto(f"{live_server.url}/guests/{vm.pk}/backups/")
    page.get_by_role("button", name="Back up now…").click()
    dialog = page.locator("#backup-dialog")
    dialog.wait_for()
    dialog.locator("select[name=storage]").select_option("nfs-store")
    page.screenshot(path=str(ARTIFACTS / "backup-dialog.png"), full_page=True)
    dialog.get_by_role("button", name="Back up now").click()
    page.wait_for_selector('#backup-panel .operation-status[data-status="succeeded"]', timeout=60_000)
    page.screenshot(path=str(ARTIFACTS / "backup-succeeded.png"), full_page=True)
    op = Operation.objects.get(kind="guest.backup")
    filename = op.result["volid"].rsplit("/", 1)[-1]
    row = page.locator("#guest-backups tr", has_text=filename)
    row.wait_for()  # the list reloaded itself when the operation finished
    page.screenshot(path=str(ARTIFACTS / "backup-listed.png"), full_page=True)
    row.get_by_role("button", name="Restore…").click()
    page.locator("#restore-dialog").wait_for()
    page.screenshot(path=str(ARTIFACTS / "backup-restore-dialog.png"), full_page=True)


def test_backup_job_pages(operator_page, live_server, sim_cluster, operator):
    """Add a backup job in the browser (a bad schedule first), then the list (screenshots)."""
    from apps.guests.models import BackupJob

    page = operator_page
    ARTIFACTS.mkdir(exist_ok=True)
    page.set_viewport_size({"width": 1360, "height": 900})
    page.goto(f"{live_server.url}/backup-jobs/add/")
    page.fill("input[name=schedule]", "mon..fry 02:30")
    page.fill("input[name=storage]", "nfs-store")
    page.check("input[name=selection][value=vmid]")
    page.select_option("select[name=vmids]", ["100", "101"])
    page.fill("input[name=keep-last]", "3")
    page.fill("input[name=keep-daily]", "7")
    page.get_by_role("button", name="Create job").click()
    assert "'fry' is not a weekday" in page.locator("form.dialog").inner_text()
    page.screenshot(path=str(ARTIFACTS / "backupjob-error.png"), full_page=True)
    page.fill("input[name=schedule]", "mon..fri 02:30")
    page.get_by_role("button", name="Create job").click()
    page.wait_for_url(f"{live_server.url}/backup-jobs/")
    job = BackupJob.objects.get()
    assert job.vmids == [100, 101] and job.retention == {"keep-last": 3, "keep-daily": 7}
    assert "mon..fri 02:30" in page.locator(f"#backupjob-{job.pk}").inner_text()
    page.screenshot(path=str(ARTIFACTS / "backupjob-list.png"), full_page=True)
