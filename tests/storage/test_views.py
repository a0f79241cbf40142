"""Storage pages: list (filter, sort, htmx partial), detail with grouped content, form errors."""

import pytest

from apps.operations.models import Operation
from apps.storage.models import Storage
from apps.storage.services import storage_content_refresh

pytestmark = pytest.mark.django_db


def test_list_page_filters_and_partial(sim_cluster, client):
    page = client.get("/storage/?content=iso&sort=-usage")
    assert page.status_code == 200
    html = page.content.decode()
    assert "nfs-store" in html and "ceph-rbd" not in html
    assert f"cluster-{sim_cluster.pk}" in html  # live updates subscribed
    partial = client.get("/storage/?shared=true", HTTP_HX_REQUEST="true")
    assert partial.status_code == 200 and "<html" not in partial.content.decode()
    assert 'id="object-table"' in partial.content.decode()


def test_detail_groups_content(sim_cluster, client):
    nfs = Storage.objects.get(cluster=sim_cluster, storage="nfs-store")
    storage_content_refresh(storage=nfs)
    html = client.get(f"/storage/{nfs.pk}/").content.decode()
    for heading in ("ISO images", "CT templates", "Backups"):
        assert heading in html
    assert "debian-13.1.0-amd64-netinst.iso" in html and "vzdump-qemu-101" in html


def test_content_is_paginated_per_group(sim_cluster, client):
    """A page of each content group (?per_page=, ?backup_page=...), with page links that fetch the block
    and put the page in the address bar; the block reloaded bare (a live reload) keeps the page the
    browser shows (HX-Current-URL)."""
    from apps.storage.models import StorageContent

    nfs = Storage.objects.get(cluster=sim_cluster, storage="nfs-store")
    storage_content_refresh(storage=nfs)
    StorageContent.objects.bulk_create([
        StorageContent(storage=nfs, volid=f"nfs-store:backup/vzdump-qemu-{900 + i}-2026_12_01-00_00_00.vma.zst",
                       content="backup", size=2 ** 30, vmid=900 + i) for i in range(12)])
    backups = StorageContent.objects.filter(storage=nfs, content="backup").count()
    html = client.get(f"/storage/{nfs.pk}/?per_page=5").content.decode()
    assert html.count('title="nfs-store:backup/') == 5 and f"Backups <span class=\"muted\">({backups})</span>" in html
    assert "debian-13.1.0-amd64-netinst.iso" in html  # the other groups keep their first page
    assert (f'href="/storage/{nfs.pk}/?per_page=5&amp;backup_page=2" hx-get="/storage/{nfs.pk}/content/'
            f'?per_page=5&amp;backup_page=2"') in html
    last = -(-backups // 5)
    block = client.get(f"/storage/{nfs.pk}/content/?backup_page={last}&per_page=5").content.decode()
    assert f"Page {last} of {last}" in block and block.count('title="nfs-store:backup/') == backups - 5 * (last - 1)
    reloaded = client.get(f"/storage/{nfs.pk}/content/", HTTP_HX_REQUEST="true",
                          HTTP_HX_CURRENT_URL=f"http://testserver/storage/{nfs.pk}/?backup_page={last}&per_page=5")
    assert f"Page {last} of {last}" in reloaded.content.decode()
    assert "Page 1 of" in client.get(f"/storage/{nfs.pk}/content/?per_page=5&backup_page=x").content.decode()


def test_download_form_errors_come_back_on_the_form(sim_cluster, client):
    nfs = Storage.objects.get(cluster=sim_cluster, storage="nfs-store")
    response = client.post(f"/storage/{nfs.pk}/download-url/", {"content": "iso", "url": "https://x.example/a.txt",
                                                                 "filename": "a.txt"}, HTTP_HX_REQUEST="true")
    html = response.content.decode()
    assert response["HX-Retarget"] == "#storage-download-form"
    assert "File name: a ISO image must end with .iso or .img" in html
    assert Operation.objects.count() == 0


def test_pages_are_empty_for_non_operators(sim_cluster, user_client):
    nfs = Storage.objects.get(cluster=sim_cluster, storage="nfs-store")
    assert "nfs-store" not in user_client.get("/storage/").content.decode()
    assert user_client.get(f"/storage/{nfs.pk}/").status_code == 404
