"""Every route is scoped: enumerates the URL conf (UI, /api/v1/, admin) so a new endpoint cannot escape.

Two tenants on pvesim's demo pools (acme, globex) after a real sync. Tenant A (acme) owns the
objects named `acme-secret…`; a second cluster where only acme has a pool supplies A's cluster,
node and storage. For every route:
- a member of tenant B (globex) gets 404 (or 405 for a method the route lacks) for A's object
  and for the operators' objects (backup jobs, GPUs, PCI mappings), and no list shows A's names;
- an auditor (session) and a read-only API token get 403 (or 405) for every write method.
And at the websocket: a tenant member is refused `tenant-<other>` and `cluster-<id>`, and the
guests push to its tenant group never names another tenant's guest.
"""

from __future__ import annotations

import json
import re

import pytest
from asgiref.sync import async_to_sync, sync_to_async
from django.contrib.auth.models import Group
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver
from rest_framework.test import APIClient

MARK = "acme-secret"
WRITE_METHODS = ["post", "put", "patch", "delete"]
ALL_METHODS = ["get", *WRITE_METHODS]

# The object a route parameter names, by the route's first segment (API routes without api/v1/).
KIND_BY_SEGMENT = {
    "guests": "guest", "snapshots": "snapshot", "operations": "operation", "audit": "audit",
    "clusters": "cluster", "nodes": "node", "storage": "storage", "storage-content": "content",
    "backups": "content", "backup-jobs": "backupjob", "gpus": "gpu", "gpu-mappings": "mapping",
    "gpu-profiles": "gpuprofile", "gpu-allocations": "gpuallocation",
    "tenants": "tenant", "tokens": "token", "quota-requests": "quotarequest", "leases": "lease", "approvals": "approval",
    "access": "cluster", "pve-access": "cluster",  # a cluster's Proxmox access control (apps/pveaccess)
}
# Parameters that name a second object on the route.
KIND_BY_PARAM = {"backup_pk": "content", "name": "snapshot_name", "tenant_id": "tenant", "user_id": "member",
                 "key": "token", "guest_pk": "guest"}
# Routes that identify the caller rather than an object, or are how one logs in or out.
# High availability (apps/ha): its route parameters are named for what they hold.
KIND_BY_PARAM.update({"ha_cluster": "cluster", "ha_node": "node", "ha_guest": "guest", "ha_resource": "haresource",
                      "ha_rule": "harule", "ha_event": "haevent", "ha_job": "replicationjob"})


def _ha_objects(cluster, guest) -> dict:
    """Tenant A's HA resource, event and replication job, and a rule (tenants see no rules)."""
    from apps.ha.models import HaEvent, HaResource, HaRule, ReplicationJob

    sid = f"{'vm' if guest.type == 'qemu' else 'ct'}:{guest.vmid}"
    resource, _ = HaResource.objects.get_or_create(cluster=cluster, sid=sid, defaults={"vmid": guest.vmid, "guest": guest})
    rule = HaRule.objects.create(cluster=cluster, rule=f"{MARK}-rule", type="node-affinity", resources=[sid])
    event = HaEvent.objects.create(cluster=cluster, at=resource.updated, kind="fence", sid=sid, guest=guest,
                                   tenant_id=guest.tenant_id, message=f"{MARK} fenced")
    job = ReplicationJob.objects.create(cluster=cluster, job_id=f"{guest.vmid}-0", vmid=guest.vmid, guest=guest,
                                        target="pve2", comment=MARK)
    return {"haresource": resource.pk, "harule": rule.pk, "haevent": event.pk, "replicationjob": job.pk}


SESSION_ROUTES = {"login/", "logout/", "api/v1/auth/token/", "admin/login/", "admin/logout/", "tenants/switch/"}


def _walk(patterns, prefix=""):
    for pattern in patterns:
        if isinstance(pattern, URLResolver):
            yield from _walk(pattern.url_patterns, prefix + _text(pattern.pattern))
        elif isinstance(pattern, URLPattern):
            yield prefix + _text(pattern.pattern)


def _text(pattern) -> str:
    return str(pattern).lstrip("^").rstrip("$")


def routes() -> list[str]:
    """Every route of the URL conf, parameters written `{name}`."""
    out = []
    for route in _walk(get_resolver().url_patterns):
        route = re.sub(r"\(\?P<(\w+)>[^)]*\)", r"{\1}", route)  # regex groups (DRF routers, admin)
        route = re.sub(r"<(?:\w+:)?(\w+)>", r"{\1}", route)  # path() converters
        out.append(route.replace("\\.", "."))
    return sorted(set(out))


def _params(route: str) -> list[str]:
    return re.findall(r"{(\w+)}", route)


def _kind(route: str, param: str) -> str:
    if param in KIND_BY_PARAM:
        return KIND_BY_PARAM[param]
    segment = route.removeprefix("api/v1/").split("/", 1)[0]
    if segment not in KIND_BY_SEGMENT:
        raise AssertionError(f"route {route!r}: say which object {{{param}}} names in KIND_BY_SEGMENT")
    return KIND_BY_SEGMENT[segment]


def url_for(route: str, objects: dict) -> str:
    if route.startswith("admin/"):  # Django admin: staff only; any value exercises the route
        return "/" + re.sub(r"{\w+}", "1", route)
    url = route
    for param in _params(route):
        url = url.replace(f"{{{param}}}", str(objects[_kind(route, param)]), 1)
    return "/" + url


@pytest.fixture
def world(pool_tenants, sim_cluster, django_user_model):
    """Tenants acme and globex on the demo pools (guests tenant-tagged by a real sync), and one
    object of each kind that tenant B must never see."""
    from apps.core.models import AuditEntry
    from apps.gpus.models import GpuDevice, PciMapping
    from apps.gpus.services import gpu_inventory_refresh
    from apps.guests.models import BackupJob, Guest, Snapshot
    from apps.nodes.models import Cluster, Node
    from apps.operations.models import Operation
    from apps.permissions.models import (
        AUDITORS_GROUP,
        ApiToken,
        QuotaRequest,
        TenantPool,
    )
    from apps.storage.models import Storage, StorageContent

    acme, globex, users = pool_tenants["acme"], pool_tenants["globex"], pool_tenants["users"]
    users["auditor"] = django_user_model.objects.create_user(username="auditor", password="auditor-pass-1234")
    users["auditor"].groups.add(Group.objects.get_or_create(name=AUDITORS_GROUP)[0])  # flushed by transactional tests

    acme_guests = Guest.objects.filter(cluster=sim_cluster, pool="acme")
    assert acme_guests.exists() and set(acme_guests.values_list("tenant_id", flat=True)) == {acme.pk}
    assert set(Guest.objects.filter(pool="globex").values_list("tenant_id", flat=True)) == {globex.pk}
    assert not Guest.objects.filter(pool="").exclude(tenant=None).exists()
    for guest in acme_guests:  # names B's pages must never show
        Guest.objects.filter(pk=guest.pk).update(name=f"{MARK}-{guest.vmid}")
    guest = acme_guests.order_by("vmid").first()
    snapshot = Snapshot.objects.create(guest=guest, name=f"{MARK}-snap")
    backup_store = Storage.objects.filter(cluster=sim_cluster, content__contains=["backup"]).first()
    volid = f"{backup_store.storage}:backup/vzdump-qemu-{guest.vmid}-{MARK}.vma.zst"
    backup = StorageContent.objects.create(storage=backup_store, content="backup", vmid=guest.vmid, volid=volid)
    operation = Operation.objects.create(kind="guest.start", title=f"Start {MARK}", target_type="guests.guest",
                                         target_id=str(guest.pk), cluster_id=sim_cluster.pk, tenant=acme,
                                         created_by=users["acme-member"])
    audit = AuditEntry.objects.create(user=users["acme-member"], username="acme-member", action="guests.guest_start",
                                      target_repr=f"{MARK} audit", result="success", tenant_id=acme.pk)
    # A cluster only acme uses: its cluster, node and storage are A's, not B's.
    other = Cluster.objects.create(name=f"{MARK}-cluster", api_url="https://192.0.2.10:8006",
                                   token_id="root@pam!t", token_secret="s", tls_mode="insecure")
    TenantPool.objects.create(tenant=acme, cluster=other, pool="acme")
    node = Node.objects.create(cluster=other, name=f"{MARK}-node")
    storage = Storage.objects.create(cluster=other, storage=f"{MARK}-store", type="dir", content=["iso", "backup"])
    job = BackupJob.objects.create(cluster=sim_cluster, job_id="backup-t1", schedule="daily", comment=f"{MARK} job")
    gpu_inventory_refresh(cluster=sim_cluster)
    gpu, mapping = GpuDevice.objects.first(), PciMapping.objects.first()
    assert gpu is not None and mapping is not None, "the demo scenario has GPUs and PCI mappings"
    from apps.gpus.models import GpuAllocation, GpuProfile

    profile = GpuProfile.objects.create(cluster=sim_cluster, name=f"{MARK}-gpu", kind="passthrough",
                                        mapping_id="gpu-l40s")
    profile.tenants.set([acme])
    allocation = GpuAllocation.objects.create(profile=profile, device=gpu, cluster=sim_cluster, vmid=guest.vmid,
                                              guest_name=f"{MARK}-{guest.vmid}", tenant=acme, state="active")
    token, _ = ApiToken.objects.create(users["acme-member"], expiry=None, name="ci", tenant=acme, read_only=True)
    quota_request = QuotaRequest.objects.create(tenant=acme, requested_by=users["acme-admin"], limits={"vcpus": 64},
                                                reason=f"{MARK} more cores")
    from datetime import timedelta

    from django.utils import timezone

    from apps.approvals.models import ApprovalRequest
    from apps.leases.models import Lease
    lease = Lease.objects.create(guest=guest, expires_at=timezone.now() + timedelta(days=3))
    approval = ApprovalRequest.objects.create(tenant=acme, kind="guest.create", title=f"Create {MARK} VM",
                                              created_by=users["acme-member"])
    return {
        "acme": acme, "globex": globex, "users": users, "token": token, "cluster": sim_cluster,
        "objects": {**_ha_objects(sim_cluster, guest), "guest": guest.pk, "snapshot": snapshot.pk, "snapshot_name": snapshot.name,
                    "content": backup.pk, "operation": operation.pk, "audit": audit.pk, "cluster": other.pk,
                    "node": node.pk, "storage": storage.pk, "backupjob": job.pk, "gpu": gpu.pk, "mapping": mapping.pk,
                    "gpuprofile": profile.pk, "gpuallocation": allocation.pk,
                    "tenant": acme.pk, "member": users["acme-member"].pk, "token": token.token_key,
                    "quotarequest": quota_request.pk,
                    "lease": lease.pk, "approval": approval.pk},
    }


def _client(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def _send(client, method: str, url: str):
    if method == "get":
        return client.get(url)
    return getattr(client, method)(url, data="{}", content_type="application/json")


def _body(response) -> str:
    if getattr(response, "streaming", False):
        return ""
    return response.content.decode(errors="replace")


@pytest.mark.django_db
@pytest.mark.parametrize("who", ["tenant_b", "auditor", "read_only_token"])
def test_every_route_is_scoped(world, who):
    failures = []
    objects = world["objects"]
    all_routes = routes()
    assert "api/v1/guests/{pk}/" in all_routes and "guests/{pk}/" in all_routes  # the walk sees both sides
    if who == "tenant_b":
        client = _client(world["users"]["globex-member"])
        for route in all_routes:
            if route in SESSION_ROUTES:
                continue
            url = url_for(route, objects)
            if route.startswith("admin/"):
                # Django admin is for staff: a tenant user is sent to its login, whatever the route.
                status = client.get(url).status_code
                if status not in (302, 404):
                    failures.append(f"GET {url} -> {status} (admin answers a tenant user)")
                continue
            if _params(route):
                statuses = {m: _send(client, m, url).status_code for m in ALL_METHODS}
                if any(s not in (404, 405) for s in statuses.values()) or 404 not in statuses.values():
                    failures.append(f"{url} ({route}) -> {statuses}: tenant B must get 404 for A's object")
            else:
                response = client.get(url)
                if MARK in _body(response):
                    failures.append(f"GET {url} -> {response.status_code} shows tenant A's objects")
                elif response.status_code == 500:
                    failures.append(f"GET {url} -> 500")
    else:
        if who == "auditor":
            client = _client(world["users"]["auditor"])
        else:
            client = APIClient()
            client.force_authenticate(user=world["users"]["acme-member"], token=world["token"])
        for route in all_routes:
            if route in SESSION_ROUTES or (who == "read_only_token" and not route.startswith("api/v1/")):
                continue
            url = url_for(route, objects)
            for method in WRITE_METHODS:
                status = _send(client, method, url).status_code
                if status not in (403, 405):
                    failures.append(f"{method.upper()} {url} -> {status}: {who} may not change anything")
    assert not failures, f"{len(failures)} unscoped:\n" + "\n".join(failures)


def test_unclassified_routes_fail_loudly():
    with pytest.raises(AssertionError, match="KIND_BY_SEGMENT"):
        url_for("widgets/{pk}/", {})


# --- websockets -----------------------------------------------------------------------------


def _communicator(path: str, user):
    from channels.testing import WebsocketCommunicator

    from datacenter.asgi import application

    client = _client(user)
    cookie = f"sessionid={client.cookies['sessionid'].value}".encode()
    return WebsocketCommunicator(application, path, headers=[(b"host", b"localhost"), (b"origin", b"http://localhost"),
                                                            (b"cookie", cookie)])


@pytest.mark.django_db(transaction=True)
def test_websocket_groups_are_checked_at_connect_and_pushes_are_per_tenant(world):
    from apps.core import live
    from apps.guests.models import Guest
    from apps.guests.services import push_guests
    from apps.permissions.models import Membership

    acme, globex, cluster = world["acme"], world["globex"], world["cluster"]
    member = world["users"]["acme-member"]
    globex_guest = Guest.objects.filter(tenant=globex).first()
    own, others = f"tenant-{acme.pk}", [f"tenant-{globex.pk}", f"cluster-{cluster.pk}", f"guest-{globex_guest.pk}"]
    assert not any(live.can_subscribe(member, g) for g in others)
    # A tenant's page asks for its tenant's group where an operator's asks for the cluster's.
    assert live.audience(member, [f"cluster-{cluster.pk}", "user-1"]) == [own, "user-1"]

    ws = _communicator(f"/ws/live/?format=json&groups={','.join([own, *others])}", member)
    guests = list(Guest.objects.filter(tenant__in=[acme, globex]).select_related("node"))
    acme_guests = [g for g in guests if g.tenant_id == acme.pk]

    async def scenario():
        connected, _ = await ws.connect()
        assert connected
        hello = json.loads(await ws.receive_from())
        assert hello == {"type": "subscribed", "groups": [own], "denied": others}
        # One sync push with guests of both tenants: acme's socket gets only acme's rows.
        await sync_to_async(push_guests)(cluster.pk, guests)
        message = json.loads(await ws.receive_from(timeout=10))
        assert message["type"] == "update"
        assert sorted(message["data"]["changed"]) == sorted(g.pk for g in acme_guests)
        for guest in guests:
            if guest.tenant_id == globex.pk:
                assert f"guest-{guest.pk}" not in message["html"] and guest.name not in message["html"]
        assert all(f"{MARK}-{g.vmid}" in message["html"] for g in acme_guests)
        # Membership removed: the socket re-checks, leaves the tenant's group and, with no group
        # left, closes.
        await sync_to_async(lambda: Membership.objects.filter(user=member, tenant=acme).delete())()
        dropped = json.loads(await ws.receive_from(timeout=10))
        assert dropped == {"type": "unsubscribed", "groups": [own]}
        assert (await ws.receive_output(timeout=10))["type"] == "websocket.close"
        await ws.disconnect()

    async_to_sync(scenario)()


@pytest.mark.django_db
def test_services_decide_and_views_translate(world):
    """A tenant member acts on its own guest (202, operation in its tenant), is refused placement
    (403, audited in its tenant) and never reaches another tenant's guest (404)."""
    from apps.core.models import AuditEntry
    from apps.guests.models import Guest
    from apps.operations.models import Operation

    acme, globex = world["acme"], world["globex"]
    client = _client(world["users"]["acme-member"])
    own = Guest.objects.get(pk=world["objects"]["guest"])
    other = Guest.objects.filter(tenant=globex).first()

    response = client.post(f"/api/v1/guests/{own.pk}/start/", data="{}", content_type="application/json")
    assert response.status_code in (202, 409), response.content  # 409: already running
    if response.status_code == 202:
        assert Operation.objects.get(pk=response.json()["id"]).tenant == acme

    response = client.post(f"/api/v1/guests/{own.pk}/migrate/", data=json.dumps({"target": "pve2"}),
                           content_type="application/json")
    assert response.status_code == 403, response.content
    denial = AuditEntry.objects.filter(result="denied", action="guest.migrate").get()
    assert (denial.user.username, denial.tenant_id, denial.target_id) == ("acme-member", acme.pk, str(own.pk))
    # Audited once, by the policy in the service: neither the API action nor the page's action
    # view writes a second entry for the same refusal.
    assert AuditEntry.objects.filter(result="denied").count() == 1
    response = client.post(f"/guests/{own.pk}/migrate/", {"target": "pve2"})
    assert response.status_code == 403, response.content
    assert AuditEntry.objects.filter(result="denied").count() == 2

    for url in (f"/api/v1/guests/{other.pk}/start/", f"/api/v1/guests/{other.pk}/migrate/",
                f"/guests/{other.pk}/power/"):
        assert client.post(url, data="{}", content_type="application/json").status_code == 404, url
    assert not Operation.objects.filter(target_id=str(other.pk)).exists()
