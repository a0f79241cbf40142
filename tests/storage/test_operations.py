"""Upload and download-url as operations, end to end: API -> Celery worker -> pvesim -> events."""

import hashlib

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from apps.operations.models import Operation
from apps.storage.models import Storage, StorageContent

from tests.fixtures import wait_for

pytestmark = pytest.mark.django_db(transaction=True)


def finished(op_id):
    op = Operation.objects.get(pk=op_id)
    return op if not op.is_active else None


def messages(op):
    return [e.message for e in op.events.order_by("seq")]


def test_upload_iso_streams_file_and_lists_it(sim_cluster, celery_worker, api):
    nfs = Storage.objects.get(cluster=sim_cluster, storage="nfs-store")
    payload = b"ISO!" * 300_000  # 1.2 MB: several progress events on the way
    upload = SimpleUploadedFile("tiny-rescue.iso", payload, content_type="application/octet-stream")
    body = api.client.post(f"/api/v1/storage/{nfs.pk}/upload/", {"content": "iso", "file": upload},
                           format="multipart")
    assert body.status_code == 202, body.content
    op = wait_for(lambda: finished(body.json()["id"]))
    assert op.status == "succeeded", (op.error, messages(op))
    text = messages(op)
    assert any(m.startswith("Sent ") for m in text)
    assert any("finished file import successfully" in m for m in text)
    assert op.upids and ":imgcopy:" in op.upids[0]
    assert op.result["volid"] == "nfs-store:iso/tiny-rescue.iso"
    assert StorageContent.objects.filter(storage=nfs, volid="nfs-store:iso/tiny-rescue.iso").exists()


def test_download_url_reports_progress_and_lists_file(sim_cluster, celery_worker, api):
    nfs = Storage.objects.get(cluster=sim_cluster, storage="nfs-store")
    url = "https://mirror.example.org/alpine-virt-3.22.iso"
    from pvesim.api.storage import fake_download_checksum

    op = api.post(f"/api/v1/storage/{nfs.pk}/download-url/", {
        "content": "iso", "url": url, "filename": "alpine-virt-3.22.iso",
        "checksum_algorithm": "sha256", "checksum": fake_download_checksum(url, "sha256")}, expect=202)
    op = wait_for(lambda: finished(op["id"]))
    assert op.status == "succeeded", (op.error, messages(op))
    progress = [e.progress for e in op.events.order_by("seq") if e.progress]
    assert progress and max(progress) == 100 and len(set(progress)) >= 3
    assert any("checksum verified" in m for m in messages(op))
    assert StorageContent.objects.filter(storage=nfs, volid="nfs-store:iso/alpine-virt-3.22.iso").exists()


def test_download_url_failure_carries_proxmox_message(sim_cluster, celery_worker, api):
    nfs = Storage.objects.get(cluster=sim_cluster, storage="nfs-store")
    url = "https://mirror.example.org/x.iso"
    op = api.post(f"/api/v1/storage/{nfs.pk}/download-url/", {
        "content": "iso", "url": url, "filename": "x.iso", "checksum_algorithm": "sha256",
        "checksum": hashlib.sha256(b"something else").hexdigest()}, expect=202)
    op = wait_for(lambda: finished(op["id"]))
    assert op.status == "failed"
    assert "checksum mismatch" in op.error
    assert not StorageContent.objects.filter(volid="nfs-store:iso/x.iso").exists()
