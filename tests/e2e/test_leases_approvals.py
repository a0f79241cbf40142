"""Browser: an operator declines a waiting request through the page's confirm dialog (its reason then
shown), and extends a guest's lease from the warning on its page; no console errors anywhere.
Real pvesim, ASGI server, chromium."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from apps.approvals.models import ApprovalRequest
from apps.guests.models import Guest
from apps.leases.models import Lease
from apps.permissions.models import Membership, Tenant, TenantPool
from apps.storage.models import Storage
from apps.storage.services import storage_content_refresh
from tests.conftest import Api
from tests.fixtures import pve, sim_cluster, sync  # noqa: F401

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

GIB = 1024**3


def console_errors(page) -> list[str]:
    errors: list[str] = []
    page.on("console", lambda msg: msg.type == "error" and errors.append(msg.text))
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    return errors


def test_operator_declines_in_the_dialog_and_extends_a_lease(operator_page, live_server, sim_cluster,  # noqa: F811
                                                              django_user_model):
    acme = Tenant.objects.create(name="ACME", slug="acme", approval_above_memory=GIB, lease_days=30,
                                 lease_max_extension_days=10)
    TenantPool.objects.create(tenant=acme, cluster=sim_cluster, pool="acme")
    sync(sim_cluster)
    for storage in Storage.objects.filter(cluster=sim_cluster):
        storage_content_refresh(storage=storage)
    member = django_user_model.objects.create_user(username="acme-member", password="pass-12345")
    Membership.objects.create(user=member, tenant=acme, role="member")
    body = {"source": "iso", "iso": "nfs-store:iso/debian-13.1.0-amd64-netinst.iso", "name": "big-vm", "cores": 1,
            "memory": 2048, "storage": "ceph-rbd", "disk_size": 1, "bridge": "vmbr0", "node": "pve3"}
    waiting = Api(member).post("/api/v1/guests/create-vm/", body, expect=202)["approval_request"]
    page = operator_page
    errors = console_errors(page)

    page.goto(f"{live_server.url}/approvals/?status=waiting")
    row = page.locator("#approval-table tbody tr", has_text="big-vm")
    row.locator("input[name=reason][required]").fill("too big for a lab")
    row.locator("button", has_text="Decline").click()
    dialog = page.locator("#confirm-dialog")
    dialog.wait_for(state="visible")
    assert "What it holds of ACME's quota is released" in dialog.inner_text()
    dialog.locator("#confirm-ok").click()
    page.wait_for_url(f"{live_server.url}/approvals/{waiting['id']}/")
    assert page.locator("#approval-reason").inner_text() == "too big for a lab"
    assert ApprovalRequest.objects.get(pk=waiting["id"]).status == "declined"

    guest = Guest.objects.filter(tenant=acme).order_by("vmid").first()
    Lease.objects.create(guest=guest, expires_at=timezone.now() + timedelta(days=2))
    page.goto(f"{live_server.url}/guests/{guest.pk}/")
    assert "lease ends on" in page.locator("#lease-warning").inner_text()
    page.fill("#lease-days", "3")
    page.click("#guest-lease button:has-text('Extend lease')")
    page.wait_for_selector("text=now ends on")
    assert Lease.objects.get(guest=guest).extensions == 1
    page.goto(f"{live_server.url}/leases/")
    page.locator("#lease-table tr[data-lease]").first.wait_for()
    assert errors == [], errors
