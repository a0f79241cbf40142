"""Browser: a tenant's self-service portal against pvesim, the Celery worker and the ASGI server.

A member of acme sees only acme's guests and its quota bars, creates a VM within quota through the
wizard (watched to success), and is refused above quota with the quota named; acme's admin creates
an API token on the tokens page, uses it with `requests`, and revokes it through the confirm dialog."""

from pathlib import Path

import pytest
import requests

from apps.guests.models import Guest
from apps.operations.models import Operation
from apps.permissions.models import Membership, Quota, Tenant, TenantPool
from apps.storage.models import Storage
from apps.storage.services import storage_content_refresh
from tests.fixtures import pve, sim_cluster, sync, wait_for  # noqa: F401  (fixtures)

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
PASSWORD = "tenant-pass-1234"
GIB = 1024**3
ISO = "nfs-store:iso/debian-13.1.0-amd64-netinst.iso"


@pytest.fixture
def tenants(sim_cluster, django_user_model):  # noqa: F811
    """acme and globex on the demo pools (as `make demo` sets them up), guests tagged by a sync."""
    for storage in Storage.objects.filter(cluster=sim_cluster):
        storage_content_refresh(storage=storage)
    out = {}
    # The pools already hold acme: 25 vCPUs, 80.5 GiB; globex: 14 vCPUs, 49 GiB.
    for slug, vcpus in (("acme", 32), ("globex", 24)):
        tenant = Tenant.objects.create(name=slug.capitalize(), slug=slug)
        TenantPool.objects.create(tenant=tenant, cluster=sim_cluster, pool=slug)
        for resource, limit in (("vcpus", vcpus), ("memory", 128 * GIB), ("disk", 500 * GIB), ("guests", 10)):
            Quota.objects.create(tenant=tenant, resource=resource, limit=limit)
        for role in ("admin", "member"):
            user = django_user_model.objects.create_user(username=f"{slug}-{role}", password=PASSWORD)
            Membership.objects.create(user=user, tenant=tenant, role=role)
        out[slug] = tenant
    sync(sim_cluster)
    assert Guest.objects.filter(tenant=out["acme"]).exists() and Guest.objects.filter(tenant=out["globex"]).exists()
    return out


def login(page, live_server, username):
    page.set_viewport_size({"width": 1360, "height": 900})
    page.goto(f"{live_server.url}/login/")
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(f"{live_server.url}/")


def shot(page, name):
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"tenant-{name}.png"), full_page=True)


def wizard(page, live_server, *, name, cores, memory_mib=2048, disk_gib=16):
    """Walk the VM wizard from an ISO up to Create (or until a step refuses)."""
    page.goto(f"{live_server.url}/guests/create/vm/", wait_until="networkidle")
    page.check("input[name=source][value=iso]")
    page.select_option("select[name=iso]", ISO)
    page.wait_for_load_state("networkidle")  # the quota bars re-ask on every change
    page.click("button[value=next]")
    page.wait_for_selector('.stepper li.current:has-text("Hardware")')
    page.fill("input[name=name]", name)
    page.fill("input[name=memory]", str(memory_mib))
    page.fill("input[name=cores]", str(cores))
    page.select_option("select[name=storage]", "ceph-rbd")
    page.fill("input[name=disk_size]", str(disk_gib))
    for _ in range(6):
        if page.locator("text=exceeded by").count():
            return
        if "Review" in page.locator(".stepper li.current").inner_text():
            page.click("button[value=create]")
            return
        step = page.locator(".stepper li.current").inner_text()
        page.wait_for_load_state("networkidle")
        page.wait_for_function("() => !document.querySelector('.htmx-request')")  # no swap under the click
        page.click("button[value=next]")
        page.wait_for_function(
            "([step]) => !document.querySelector('.stepper li.current') ||"
            " document.querySelector('.stepper li.current').innerText !== step ||"
            " document.body.innerText.includes('exceeded by') || document.querySelector('.field.has-error')",
            arg=[step], timeout=30_000)
        if page.locator(".field.has-error").count() and not page.locator("text=exceeded by").count():
            raise AssertionError(page.locator(".field.has-error").first.inner_text())


def test_a_member_sees_only_their_guests_and_creates_within_quota(page, live_server, tenants, celery_worker, pve):  # noqa: F811
    acme, globex = tenants["acme"], tenants["globex"]
    login(page, live_server, "acme-member")
    # The dashboard: acme's guests and quota bars, no cluster to register, no Admin.
    page.locator("#tenant-quota [data-quota=vcpus]").wait_for()
    guests = page.locator("#tenant-guests").inner_text()
    for guest in Guest.objects.filter(tenant=acme):
        assert str(guest.vmid) in guests
    for guest in Guest.objects.filter(tenant=globex):
        assert guest.name not in guests
    body = page.inner_text("body")
    assert "Register a Proxmox VE cluster" not in body and "Admin" not in page.locator("nav.nav").inner_text()
    assert "Clusters" not in page.locator("nav.nav").inner_text()
    shot(page, "dashboard")
    # The guest list: acme's only.
    page.goto(f"{live_server.url}/guests/")
    table = page.locator("table").first.inner_text()
    assert all(g.name in table for g in Guest.objects.filter(tenant=acme))
    assert not any(g.name in table for g in Guest.objects.filter(tenant=globex))
    shot(page, "guests")
    # Another tenant's guest by its id: 404.
    other = Guest.objects.filter(tenant=globex).first()
    assert page.goto(f"{live_server.url}/guests/{other.pk}/").status == 404

    # Within quota: the wizard's VM lands in acme's pool, the operation watched to success.
    wizard(page, live_server, name="lab-01", cores=2)
    page.locator("section.operation-progress").wait_for()
    operation = wait_for(lambda: Operation.objects.filter(kind="guest.create").first())
    page.wait_for_function(f"() => (document.querySelector('#operation-{operation.pk}-status') || {{dataset: {{}}}})"
                           f".dataset.status === 'succeeded'", timeout=90_000)
    operation.refresh_from_db()
    guest = Guest.objects.get(pk=operation.result["guest"])
    assert guest.tenant_id == acme.pk and guest.pool == "acme"
    assert pve.get(f"pools/acme")["members"] and any(
        m.get("vmid") == guest.vmid for m in pve.get("pools/acme")["members"])
    shot(page, "created")

    # Above quota: refused, the quota named in the form, nothing created.
    count = Guest.objects.count()
    wizard(page, live_server, name="lab-huge", cores=16)  # 25 + 16 > 32
    message = page.locator("text=exceeded by").first
    message.wait_for()
    assert "vCPUs" in message.inner_text() and "acme" in message.inner_text()
    shot(page, "refused")
    assert Operation.objects.filter(kind="guest.create").count() == 1 and Guest.objects.count() == count


def test_a_tenant_admin_creates_uses_and_revokes_a_token(page, live_server, tenants):
    acme, globex = tenants["acme"], tenants["globex"]
    login(page, live_server, "acme-admin")
    page.goto(f"{live_server.url}/tokens/")
    page.fill("input[name=name]", "ci-script")
    page.click("button:has-text('Create token')")
    secret = page.locator("#token-secret").inner_text().strip()
    assert len(secret) > 20
    shot(page, "token-created")

    headers = {"Authorization": f"Token {secret}"}
    answer = requests.get(f"{live_server.url}/api/v1/guests/", headers=headers, timeout=10)
    assert answer.status_code == 200
    rows = answer.json()["results"] if isinstance(answer.json(), dict) else answer.json()
    vmids = {row["vmid"] for row in rows}
    assert vmids == set(Guest.objects.filter(tenant=acme).values_list("vmid", flat=True))
    other = Guest.objects.filter(tenant=globex).first()
    assert requests.get(f"{live_server.url}/api/v1/guests/{other.pk}/", headers=headers, timeout=10).status_code == 404
    tenants_seen = requests.get(f"{live_server.url}/api/v1/tenants/", headers=headers, timeout=10).json()
    tenants_seen = tenants_seen["results"] if isinstance(tenants_seen, dict) else tenants_seen
    assert [t["slug"] for t in tenants_seen] == ["acme"]

    # Revoke through the page's confirm dialog: the token is refused from then on.
    page.goto(f"{live_server.url}/tokens/")
    page.locator("#token-table tr:has-text('ci-script') button:has-text('Revoke')").click()
    page.locator("#confirm-dialog #confirm-ok").click()
    page.wait_for_selector("text=revoked")
    assert requests.get(f"{live_server.url}/api/v1/guests/", headers=headers, timeout=10).status_code == 401
