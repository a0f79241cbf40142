"""Browser check of the storage and guest pages (Playwright + Debian chromium, live ASGI server)."""

import os

import pytest

from apps.guests.models import Guest
from apps.storage.models import Storage
from apps.storage.services import storage_content_refresh

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]
SHOTS = os.environ.get("SCREENSHOT_DIR", "/tmp/screens")


def shot(page, name):
    os.makedirs(SHOTS, exist_ok=True)
    page.screenshot(path=f"{SHOTS}/{name}.png", full_page=True)


def test_pages_in_a_browser(sim_cluster, celery_worker, operator_page, live_server):
    page = operator_page
    nfs = Storage.objects.get(cluster=sim_cluster, storage="nfs-store")
    storage_content_refresh(storage=nfs)
    page.set_viewport_size({"width": 1400, "height": 900})
    page.goto(f"{live_server.url}/storage/")
    page.wait_for_selector("#object-table")
    assert page.locator(f"#storage-{nfs.pk}-usage .progress").count() == 1
    shot(page, "storage_list")

    page.goto(f"{live_server.url}/storage/{nfs.pk}/")
    page.wait_for_selector(f"#storage-{nfs.pk}-content")
    shot(page, "storage_detail")
    # Download from a URL: the operation panel appears and ends with the file listed.
    page.click("text=Download from a URL")
    page.fill("#storage-download-form input[name=url]", "https://mirror.example.org/rescue.iso")
    page.fill("#storage-download-form input[name=filename]", "rescue.iso")
    page.click("#storage-download-form button[type=submit]")
    page.wait_for_selector("#storage-operation .operation-progress")
    page.wait_for_selector(f"#storage-{nfs.pk}-content >> text=rescue.iso", timeout=60_000)
    shot(page, "storage_download_done")
    # Upload from this computer: browser -> Django -> worker -> Proxmox, then listed.
    page.set_input_files("#storage-upload-form input[name=file]", files=[
        {"name": "netboot.iso", "mimeType": "application/octet-stream", "buffer": b"\0" * 3_000_000}])
    page.click("#storage-upload-form button[type=submit]")
    page.wait_for_selector(f"#storage-{nfs.pk}-content >> text=netboot.iso", timeout=60_000)

    page.goto(f"{live_server.url}/guests/")
    page.wait_for_selector("#object-table")
    shot(page, "guest_list")

    vm = Guest.objects.get(cluster=sim_cluster, vmid=104)
    page.goto(f"{live_server.url}/guests/{vm.pk}/")
    page.wait_for_selector(f"#guest-{vm.pk}-details")
    # The details refresh runs in the worker and the page reloads the block by itself.
    page.wait_for_selector(f"#guest-{vm.pk}-details >> text=scsi0", timeout=60_000)
    page.click("button[value=start]")
    page.wait_for_selector("#guest-operation .operation-progress")
    page.wait_for_selector(f"#guest-{vm.pk}-status >> text=Running", timeout=60_000)
    shot(page, "guest_detail")
