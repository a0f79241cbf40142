"""Storage API: lists with constant query counts, filters, scoping, field errors."""

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import connection
from django.test.utils import CaptureQueriesContext

from apps.operations.models import Operation
from apps.storage.models import Storage, StorageContent
from apps.storage.services import storage_content_refresh

pytestmark = pytest.mark.django_db


def count_queries(api, url):
    with CaptureQueriesContext(connection) as ctx:
        api.get(url)
    return len(ctx.captured_queries)


def test_storage_list_query_count_does_not_grow_with_rows(sim_cluster, api):
    few = count_queries(api, "/api/v1/storage/?page_size=2")
    many = count_queries(api, "/api/v1/storage/?page_size=100")
    assert few == many
    body = api.get("/api/v1/storage/?shared=true")
    assert {s["storage"] for s in body["results"]} == {"ceph-rbd", "nfs-store"}
    assert all(s["node"] is None for s in body["results"])


def test_storage_filters_by_node_and_content(sim_cluster, api):
    body = api.get("/api/v1/storage/?node=pve2&content=iso")
    names = sorted((s["storage"], s["node"]) for s in body["results"])
    assert names == [("local", "pve2"), ("nfs-store", None)]


def test_content_list_filters_and_constant_queries(sim_cluster, api):
    for storage in Storage.objects.filter(cluster=sim_cluster):
        storage_content_refresh(storage=storage)
    nfs = Storage.objects.get(cluster=sim_cluster, storage="nfs-store")
    isos = api.get(f"/api/v1/storage-content/?storage={nfs.pk}&content=iso")["results"]
    assert isos and all(i["content"] == "iso" and i["storage_name"] == "nfs-store" for i in isos)
    backups = api.get("/api/v1/storage-content/?content=backup&vmid=101")["results"]
    assert [b["vmid"] for b in backups] == [101] * len(backups) and backups
    assert count_queries(api, "/api/v1/storage-content/?page_size=1") == \
        count_queries(api, "/api/v1/storage-content/?page_size=100")


def test_non_operator_sees_no_storage(sim_cluster, api_for, user):
    nfs = Storage.objects.get(cluster=sim_cluster, storage="nfs-store")
    member = api_for(user)
    assert member.get("/api/v1/storage/")["count"] == 0
    member.get(f"/api/v1/storage/{nfs.pk}/", expect=404)
    member.post(f"/api/v1/storage/{nfs.pk}/download-url/", {"content": "iso"}, expect=404)


def test_download_url_bad_input_names_each_field(sim_cluster, api):
    rbd = Storage.objects.get(cluster=sim_cluster, storage="ceph-rbd")
    nfs = Storage.objects.get(cluster=sim_cluster, storage="nfs-store")
    body = api.post(f"/api/v1/storage/{nfs.pk}/download-url/", {"content": "disk", "url": "not a url"}, expect=400)
    assert set(body["errors"]) == {"content", "url", "filename"}
    body = api.post(f"/api/v1/storage/{rbd.pk}/download-url/",
                    {"content": "iso", "url": "https://x.example/a.iso", "filename": "a.iso"}, expect=400)
    assert "does not hold ISO image content" in body["errors"]["content"][0]
    body = api.post(f"/api/v1/storage/{nfs.pk}/download-url/",
                    {"content": "iso", "url": "https://x.example/a.txt", "filename": "a.txt",
                     "checksum": "abc"}, expect=400)
    assert "must end with .iso" in body["errors"]["filename"][0]
    assert "give both or neither" in body["errors"]["checksum_algorithm"][0]
    assert Operation.objects.count() == 0


def test_upload_bad_input_names_each_field(sim_cluster, api):
    nfs = Storage.objects.get(cluster=sim_cluster, storage="nfs-store")
    response = api.client.post(f"/api/v1/storage/{nfs.pk}/upload/", {"content": "iso"}, format="multipart")
    assert response.status_code == 400 and "file" in response.json()["errors"]
    bad = SimpleUploadedFile("../../etc/passwd.iso", b"x", content_type="application/octet-stream")
    response = api.client.post(f"/api/v1/storage/{nfs.pk}/upload/",
                               {"content": "iso", "file": bad, "filename": "../evil.iso"}, format="multipart")
    assert response.status_code == 400 and "filename" in response.json()["errors"]
    assert Operation.objects.count() == 0
    assert not StorageContent.objects.filter(volid__contains="evil").exists()
