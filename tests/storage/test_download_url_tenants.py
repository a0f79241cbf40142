"""Download from URL for tenants: public addresses only (after DNS), http(s) only, the field named;
operators unrestricted, and may open networks (DOWNLOAD_URL_ALLOWED_NETWORKS). Uploads and downloads
of a tenant's users count against its disk quota: refused when it has no room (field named), held
while they run, and the stored file counted at its listed size afterwards (end to end on pvesim)."""

from __future__ import annotations

import socket
import uuid

import pytest
from django.core.exceptions import ValidationError
from django.core.files.uploadedfile import SimpleUploadedFile

from apps.operations.models import Operation
from apps.permissions import quotas
from apps.permissions.models import (
    Membership,
    Quota,
    Reservation,
    Tenant,
    TenantFile,
    TenantPool,
)
from apps.storage.models import Storage, StorageContent
from apps.storage.public_url import check_public_url
from tests.conftest import Api
from tests.fixtures import wait_for

PUBLIC_V4, PUBLIC_V6 = "151.101.2.132", "2a04:4e42::644"


def resolver(*addresses):
    """getaddrinfo's answer for a name that resolves to `addresses` (no DNS in the test)."""
    def resolve(host, port, type=0):
        return [(socket.AF_INET6 if ":" in a else socket.AF_INET, socket.SOCK_STREAM, 6, "", (a, port))
                for a in addresses]
    return resolve


def refusal(url, *addresses) -> str:
    with pytest.raises(ValidationError) as info:
        check_public_url(url, resolver=resolver(*addresses))
    assert list(info.value.message_dict) == ["url"]
    return info.value.message_dict["url"][0]


@pytest.mark.parametrize("address, reason", [
    ("127.0.0.1", "loopback"), ("127.8.9.10", "loopback"), ("::1", "loopback"),
    ("169.254.169.254", "cloud metadata"), ("fd00:ec2::254", "cloud metadata"), ("100.100.100.200", "cloud metadata"),
    ("169.254.1.1", "link-local"), ("fe80::1", "link-local"),
    ("10.1.2.3", "private"), ("172.16.0.1", "private"), ("192.168.1.1", "private"), ("fd12:3456::1", "private"),
    ("100.64.0.1", "carrier-grade NAT"), ("100.127.255.254", "carrier-grade NAT"),
    ("224.0.0.1", "multicast"), ("239.255.255.250", "multicast"), ("ff02::1", "multicast"),
    ("240.0.0.1", "reserved"), ("0.0.0.0", "unspecified"), ("::", "unspecified"),
    ("::ffff:127.0.0.1", "loopback"), ("::ffff:10.0.0.1", "private"), ("::ffff:169.254.169.254", "cloud metadata"),
    ("2002:a00:1::1", "private"),  # 6to4 of 10.0.0.1
    ("64:ff9b::a9fe:a9fe", "cloud metadata"),  # NAT64 of 169.254.169.254
    ("192.0.2.10", "private"), ("198.18.0.1", "private"),
])
def test_tenants_may_not_reach_internal_addresses(address, reason):
    # Through DNS and as a literal: refused either way, the reason named on `url`.
    assert reason in refusal("https://mirror.example.org/a.iso", address)
    assert "mirror.example.org resolves to" in refusal("https://mirror.example.org/a.iso", address)
    literal = f"[{address}]" if ":" in address else address
    assert reason in refusal(f"http://{literal}:8080/a.iso")


def test_public_addresses_pass_and_every_resolved_address_must_be_public(settings):
    check_public_url("https://mirror.example.org/a.iso", resolver=resolver(PUBLIC_V4, PUBLIC_V6))
    check_public_url(f"http://{PUBLIC_V4}/a.iso")
    check_public_url(f"https://[{PUBLIC_V6}]/a.iso")
    assert "10.0.0.7" in refusal("https://mirror.example.org/a.iso", PUBLIC_V4, "10.0.0.7")


@pytest.mark.parametrize("url, reason", [
    ("ftp://mirror.example.org/a.iso", "only http:// and https://"),
    ("file:///etc/passwd", "only http:// and https://"),
    ("gopher://127.0.0.1:6379/_x", "only http:// and https://"),
    ("https:///a.iso", "names no host"),
    ("http://example.org:99999/a.iso", "not a valid address"),
])
def test_only_http_and_https_to_a_named_host(url, reason):
    assert reason in refusal(url, PUBLIC_V4)


def test_a_name_that_does_not_resolve_is_refused_naming_it():
    def fails(host, port, type=0):
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    with pytest.raises(ValidationError) as info:
        check_public_url("https://nowhere.invalid/a.iso", resolver=fails)
    assert "'nowhere.invalid' cannot be resolved" in info.value.message_dict["url"][0]


def test_operators_open_networks_with_the_setting(settings):
    settings.DOWNLOAD_URL_ALLOWED_NETWORKS = ["10.0.5.0/24", "fd00:5::/64"]
    check_public_url("http://mirror.lan/a.iso", resolver=resolver("10.0.5.20"))
    check_public_url("http://[fd00:5::20]/a.iso")
    assert "private" in refusal("http://mirror.lan/a.iso", "10.0.6.20")
    assert "loopback" in refusal("http://127.0.0.1/a.iso")


# --- through the API: the service decides ---------------------------------------------------------


@pytest.fixture
def acme(db, django_user_model):
    """Tenant acme with a pool on a cluster (no Proxmox needed: nothing reaches it), an available ISO
    storage there and a member."""
    from apps.nodes.models import Cluster

    cluster = Cluster.objects.create(name="lab", api_url="https://192.0.2.10:8006", token_id="root@pam!t",
                                     token_secret="s", tls_mode="insecure")
    tenant = Tenant.objects.create(name="ACME", slug="acme")
    TenantPool.objects.create(tenant=tenant, cluster=cluster, pool="acme")
    tenant.storage = Storage.objects.create(cluster=cluster, storage="isos", type="nfs", content=["iso"],
                                            shared=True, status="available", nodes=["pve1"])
    tenant.member = django_user_model.objects.create_user(username="acme-member", password="tenant-pass-1234")
    Membership.objects.create(user=tenant.member, tenant=tenant, role="member")
    return tenant


def _download(user, storage, url, *, expect):
    return Api(user).post(f"/api/v1/storage/{storage.pk}/download-url/",
                          {"content": "iso", "url": url, "filename": "a.iso"}, expect=expect)


def test_a_tenants_download_from_an_internal_address_is_a_400_naming_url(acme, operator):
    body = _download(acme.member, acme.storage, "http://169.254.169.254/latest/meta-data/", expect=400)
    assert "169.254.169.254 is a cloud metadata address" in body["errors"]["url"][0]
    body = _download(acme.member, acme.storage, "http://[::ffff:7f00:1]:8006/a.iso", expect=400)
    assert "loopback" in body["errors"]["url"][0]
    assert "http:// or https://" in str(_download(acme.member, acme.storage, "ftp://192.0.2.1/a.iso",
                                                        expect=400)["errors"]["url"])
    assert not Operation.objects.exists()  # nothing queued
    # An operator's request is theirs to make (the node's network is theirs).
    _download(operator, acme.storage, "http://10.0.5.20/a.iso", expect=202)


def test_transfers_of_a_tenant_count_against_its_disk_quota(acme):
    Quota.objects.create(tenant=acme, resource="disk", limit=1000)
    member = Api(acme.member)
    url = f"/api/v1/storage/{acme.storage.pk}/upload/"
    too_big = SimpleUploadedFile("big.iso", b"x" * 1001)
    response = member.client.post(url, {"content": "iso", "file": too_big}, format="multipart")
    assert response.status_code == 400, response.content
    assert "quota 'Disk' of tenant acme exceeded by 1 B: limit 1000 B, used 0 B, reserved 0 B, requested 1001 B" in response.json()["errors"]["file"][0]
    response = member.client.post(url, {"content": "iso", "file": SimpleUploadedFile("ok.iso", b"x" * 600)},
                                  format="multipart")
    assert response.status_code == 202, response.content
    held = Reservation.objects.get(state="reserved")
    assert (held.operation_id, held.resource, held.amount) == (uuid.UUID(response.json()["id"]), "disk", 600)
    # The download needs room left: 400 bytes are, so it is accepted (holding one byte) ...
    _download(acme.member, acme.storage, f"https://{PUBLIC_V4}/a.iso", expect=202)
    # ... and once files fill the quota, the next is refused on `url`.
    StorageContent.objects.create(storage=acme.storage, content="iso", volid="isos:iso/old.iso", size=400)
    TenantFile.objects.create(tenant=acme, storage_id=acme.storage.pk, volid="isos:iso/old.iso")
    body = _download(acme.member, acme.storage, f"https://{PUBLIC_V4}/b.iso", expect=400)
    assert "quota 'Disk' of tenant acme is full" in body["errors"]["url"][0]
    assert Operation.objects.count() == 2


@pytest.mark.django_db(transaction=True)
def test_a_tenants_upload_then_counts_at_its_listed_size(sim_cluster, celery_worker, django_user_model):
    tenant = Tenant.objects.create(name="ACME", slug="acme")
    TenantPool.objects.create(tenant=tenant, cluster=sim_cluster, pool="acme")
    member = django_user_model.objects.create_user(username="acme-member", password="tenant-pass-1234")
    Membership.objects.create(user=member, tenant=tenant, role="member")
    nfs = Storage.objects.get(cluster=sim_cluster, storage="nfs-store")
    before = quotas._used(tenant, "disk")
    payload = b"ISO!" * 5000
    response = Api(member).client.post(f"/api/v1/storage/{nfs.pk}/upload/",
                                       {"content": "iso", "file": SimpleUploadedFile("lab.iso", payload)},
                                       format="multipart")
    assert response.status_code == 202, response.content
    op = wait_for(lambda: (o := Operation.objects.get(pk=response.json()["id"])) and not o.is_active and o)
    assert op.status == "succeeded", op.error
    assert TenantFile.objects.get(tenant=tenant).volid == "nfs-store:iso/lab.iso"
    # No longer held once the operation has ended: the file exists and counts by itself.
    wait_for(lambda: Reservation.objects.get(operation_id=op.pk).state == "committed")
    listed = StorageContent.objects.get(storage=nfs, volid="nfs-store:iso/lab.iso").size
    assert listed > 0 and quotas._used(tenant, "disk") == before + listed
    StorageContent.objects.filter(volid="nfs-store:iso/lab.iso").delete()  # gone from the list: freed
    assert quotas._used(tenant, "disk") == before
