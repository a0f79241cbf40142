"""Browser: the backup jobs page gets the refreshed list. Opening it queues a re-read of Proxmox's
/cluster/backup (in the worker); the page asks for its table again once its socket is open (the
re-read may end before the page listens), and a later re-read that changed the jobs pushes a
trigger that fetches the table again. Real pvesim, Celery worker, ASGI server, chromium."""

import pytest
from django.core.cache import cache

from apps.guests.actions.backup_jobs.services import backup_job_refresh
from apps.guests.models import BackupJob
from apps.nodes import presence
from tests.e2e.test_confirm import HOLD_SOCKETS, watch
from tests.fixtures import pve, sim_cluster, wait_for  # noqa: F401

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


def test_a_reread_done_before_the_page_listens_still_reaches_it(operator_page, live_server, sim_cluster,
                                                                  celery_worker, pve):
    page = operator_page
    seen = watch(page)
    page.add_init_script(HOLD_SOCKETS)
    pve.post("cluster/backup", id="early-bird", schedule="sun 01:00", storage="nfs-store", all=1)
    cache.delete(f"guests:backup-jobs:{sim_cluster.pk}")
    page.goto(f"{live_server.url}/backup-jobs/")
    wait_for(lambda: BackupJob.objects.filter(cluster=sim_cluster, job_id="early-bird").exists(), timeout=60)
    row = page.locator("#backupjob-table", has_text="early-bird")
    assert row.count() == 0  # rendered before the re-read, which nobody could hear
    page.evaluate("window.__openSockets()")
    row.wait_for(timeout=15_000)
    assert seen["errors"] == []


def test_a_reread_that_changed_the_jobs_shows_on_the_open_page(operator_page, live_server, sim_cluster,
                                                                celery_worker, pve):
    page = operator_page
    seen = watch(page)
    page.goto(f"{live_server.url}/backup-jobs/")
    wait_for(lambda: presence.watcher_count(f"cluster-{sim_cluster.pk}"), timeout=30)  # the page listens
    pve.post("cluster/backup", id="made-in-proxmox", schedule="21:00", storage="nfs-store", all=1)
    backup_job_refresh(cluster=sim_cluster)  # what the watched cluster's sync queues every JOB_REFRESH
    page.locator("#backupjob-table", has_text="made-in-proxmox").wait_for(timeout=15_000)
    pve.delete("cluster/backup/made-in-proxmox")
    backup_job_refresh(cluster=sim_cluster)
    page.locator("#backupjob-table", has_text="made-in-proxmox").wait_for(state="detached", timeout=15_000)
    assert seen["errors"] == []
