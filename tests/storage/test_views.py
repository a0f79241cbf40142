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
