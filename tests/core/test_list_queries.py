"""Every list page and API list costs a constant number of SQL queries, whatever the page size and
the number of rows, for an operator and for a tenant admin; and no list calls Proxmox.

Rows are added in bulk to the demo cluster (pvesim, synced once): guests of the tenant's pool,
nodes, backups of the tenant's guests, operations and audit entries of the tenant.
"""

from __future__ import annotations

import uuid

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from rest_framework.test import APIClient

from tests.fixtures import pve, sim_cluster  # noqa: F401

pytestmark = pytest.mark.django_db

# (url, page size parameter, seen by a tenant admin); {storage} is the backups' storage.
LISTS = [
    ("/guests/", "per_page", True),
    ("/api/v1/guests/", "page_size", True),
    ("/nodes/", "per_page", False),
    ("/api/v1/nodes/", "page_size", False),
    ("/storage/{storage}/", "per_page", True),  # a page of each content group (?per_page=, ?backup_page=)
    ("/storage/{storage}/content/", "per_page", True),
    ("/api/v1/storage-content/", "page_size", True),
    ("/operations/", "per_page", True),
    ("/api/v1/operations/", "page_size", True),
    ("/audit/", "per_page", True),
    ("/api/v1/audit/", "page_size", True),
]


@pytest.fixture
def world(sim_cluster, operator, django_user_model):  # noqa: F811
    from apps.nodes.sync import run_cycle
    from apps.permissions.models import Membership, Tenant, TenantPool
    from apps.storage.models import Storage

    tenant = Tenant.objects.create(name="ACME", slug="acme")
    TenantPool.objects.create(tenant=tenant, cluster=sim_cluster, pool="acme")
    assert run_cycle(sim_cluster.pk).ok
    admin = django_user_model.objects.create_user(username="acme-admin", password="x")
    Membership.objects.create(user=admin, tenant=tenant, role="admin")
    storage = Storage.objects.filter(cluster=sim_cluster, content__contains=["backup"]).first()
    return {"cluster": sim_cluster, "tenant": tenant, "operator": operator, "admin": admin, "storage": storage,
            "added": 0}


def add_rows(world, n):
    """n more guests (the tenant's), nodes, backups, operations and audit entries."""
    from apps.core.models import AuditEntry
    from apps.guests.models import Guest
    from apps.nodes.models import Node
    from apps.operations.models import Operation
    from apps.storage.models import StorageContent

    cluster, tenant, storage = world["cluster"], world["tenant"], world["storage"]
    start = 5000 + world["added"]
    world["added"] += n
    node = Node.objects.filter(cluster=cluster).first()
    Node.objects.bulk_create([Node(cluster=cluster, name=f"extra{start + i}", status="online")
                              for i in range(n)])
    guests = Guest.objects.bulk_create([
        Guest(cluster=cluster, vmid=start + i, type="qemu" if i % 2 else "lxc", name=f"bulk-{start + i}",
              node=node, status="running", pool="acme", tenant=tenant, tags=["a", "b"], maxcpu=2,
              maxmem=2 ** 31, maxdisk=2 ** 33) for i in range(n)])
    StorageContent.objects.bulk_create([
        StorageContent(storage=storage, volid=f"{storage.storage}:backup/vzdump-qemu-{g.vmid}-2026_12_01-00_00_00.vma.zst",
                       content="backup", size=2 ** 30, format="vma.zst", vmid=g.vmid) for g in guests])
    Operation.objects.bulk_create([
        Operation(id=uuid.uuid4(), kind="guest.start", title=f"Start {g.name}", target_type="guests.guest",
                  target_id=str(g.pk), target_repr=g.name, cluster_id=cluster.pk, tenant=tenant,
                  status="succeeded", created_by=world["admin"]) for g in guests])
    AuditEntry.objects.bulk_create([
        AuditEntry(user=world["admin"], username="acme-admin", action="guests.guest_start", target_type="guests.guest",
                   target_id=str(g.pk), target_repr=g.name, result="accepted", tenant_id=tenant.pk) for g in guests])


def queries(client, url) -> int:
    client.get(url)  # warm: first-request work (session, per-process caches) is not the list's
    with CaptureQueriesContext(connection) as ctx:
        response = client.get(url)
    assert response.status_code == 200, (url, response.status_code)
    return len(ctx)


@pytest.mark.parametrize("as_tenant", [False, True], ids=["operator", "tenant"])
def test_list_query_count_is_constant_in_rows_and_page_size(world, as_tenant):
    user = world["admin"] if as_tenant else world["operator"]
    page, api = Client(), APIClient()
    page.force_login(user)
    api.force_authenticate(user)
    lists = [(url.format(storage=world["storage"].pk), size) for url, size, tenant in LISTS if tenant or not as_tenant]

    def count(url, size, per_page):
        client = api if url.startswith("/api/") else page
        sep = "&" if "?" in url else "?"
        return queries(client, f"{url}{sep}{size}={per_page}" if size else url)

    add_rows(world, 3)
    small = {url: count(url, size, 5) for url, size in lists}
    add_rows(world, 30)
    large = {url: count(url, size, 5) for url, size in lists}
    wide = {url: count(url, size, 25) for url, size in lists}
    assert all(small.values()), small  # the count is real
    assert large == small, "queries grow with the number of rows"
    assert wide == small, "queries grow with the page size"


def test_storage_page_shows_a_tenant_only_its_own_backups(world):
    from apps.storage.models import StorageContent

    add_rows(world, 2)
    storage = world["storage"]
    StorageContent.objects.create(storage=storage, volid=f"{storage.storage}:backup/vzdump-qemu-987654-other.vma.zst",
                                  content="backup", vmid=987654)
    page = Client()
    for user, shown in ((world["operator"], True), (world["admin"], False)):
        page.force_login(user)
        for url in (f"/storage/{storage.pk}/", f"/storage/{storage.pk}/content/"):
            body = page.get(url).content.decode()
            assert "vzdump-qemu-5000-" in body  # the tenant's own guest's backup
            assert ("vzdump-qemu-987654-other" in body) is shown, (user, url)


def test_lists_never_call_proxmox(world, pvesim):
    add_rows(world, 10)
    page, api = Client(), APIClient()
    pvesim.admin("DELETE", "/counters")
    for user, as_tenant in ((world["operator"], False), (world["admin"], True)):
        page.force_login(user)
        api.force_authenticate(user)
        for url, _, tenant in LISTS:
            if tenant or not as_tenant:
                url = url.format(storage=world["storage"].pk)
                assert (api if url.startswith("/api/") else page).get(url).status_code == 200, url
    assert pvesim.counters()["total"] == 0


@pytest.mark.parametrize("url", ["/api/v1/guests/", "/api/v1/operations/", "/api/v1/audit/", "/api/v1/storage-content/"])
def test_api_lists_answer_what_their_serializer_answers(world, url):
    """These lists answer from `.values()` (apps.core.api.lean): the same JSON, field for field and in
    the same order, as their serializer gives for the same objects."""
    from django.test import RequestFactory
    from django.utils import timezone
    from rest_framework.request import Request
    from rest_framework.test import APIClient

    from apps.core.models import AuditEntry
    from apps.operations.models import Operation
    from apps.storage.models import StorageContent

    add_rows(world, 4)
    # Values of every kind: none, JSON, a running operation without its user, a token, a tenant...
    Operation.objects.filter(pk__in=list(Operation.objects.values_list("pk", flat=True)[:2])).update(
        status="running", progress=42, created_by=None, upids=["UPID:pve1:1"], result={"a": [1, None]}, eta=30)
    AuditEntry.objects.filter(pk__in=list(AuditEntry.objects.values_list("pk", flat=True)[:2])).update(
        token="ci", remote_addr="2001:db8::1", detail={"operation": "x"})
    StorageContent.objects.filter(pk__in=list(StorageContent.objects.values_list("pk", flat=True)[:2])).update(
        ctime=timezone.now(), notes="<b>n</b>", protected=True)
    api = APIClient()
    api.force_authenticate(world["operator"])
    response = api.get(f"{url}?page_size=500")
    assert response.status_code == 200
    listed = response.json()["results"]
    assert len(listed) >= 4
    view = response.renderer_context["view"]
    serializer_class = view.get_serializer_class()
    model = serializer_class.Meta.model
    by_pk = model.objects.in_bulk([row["id"] for row in listed])
    request = Request(RequestFactory().get(url))
    expected = serializer_class([by_pk[type(next(iter(by_pk)))(row["id"])] for row in listed], many=True,
                                context={"request": request}).data
    for got, want in zip(listed, expected):
        want = dict(want)
        assert list(got) == list(want)
        if want.get("uptime") is not None:  # seconds since boot, read a moment apart
            assert got["uptime"] == pytest.approx(want["uptime"], abs=60)
            got["uptime"] = want["uptime"]
        assert got == want
