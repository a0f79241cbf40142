"""Browser: an operator manages a cluster's Proxmox access from the navigation - a group, a user in
it, a Proxmox API token whose secret is shown once, a permission, the effective privileges (Proxmox
agrees) - and deletes the user through the page's dialog (cancel sends nothing). No console errors."""

import pytest

from apps.proxmox import access as pve_access
from tests.fixtures import pve, pve_client  # noqa: F401

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


def test_operator_manages_proxmox_access(operator_page, live_server, pve, pvesim):  # noqa: F811
    from apps.nodes.models import Cluster

    cluster = Cluster.objects.create(name="sim", api_url=pvesim.url, token_id=pvesim.token_id,
                                     token_secret=pvesim.token_secret, tls_mode="pin", fingerprint=pvesim.fingerprint)
    page = operator_page
    problems = []
    page.on("console", lambda m: m.type in ("error", "warning") and problems.append(f"{m.type}: {m.text}"))
    page.on("pageerror", lambda e: problems.append(str(e)))
    posts = []
    page.on("request", lambda r: r.method == "POST" and posts.append(r.url))

    page.get_by_role("link", name="Proxmox access").click()
    page.wait_for_url(f"{live_server.url}/access/{cluster.pk}/users/")
    tabs = page.get_by_role("navigation", name="Access control")
    assert page.locator("#user-table").get_by_text("alice@pve").is_visible()

    tabs.get_by_role("link", name="Groups").click()
    page.fill("#group-form input[name=groupid]", "devs")
    page.get_by_role("button", name="Create group").click()
    page.wait_for_selector("text=Group devs created.")

    tabs.get_by_role("link", name="Users").click()
    page.fill("#user-form input[name=userid]", "dora")  # no realm: the field says so, nothing sent
    page.get_by_role("button", name="Create user").click()
    assert "not a user id of the form name@realm" in page.locator("#user-form").inner_text()
    page.fill("#user-form input[name=userid]", "dora@pve")
    page.select_option("#user-form select[name=groups]", "devs")
    page.get_by_role("button", name="Create user").click()
    page.wait_for_selector("text=User dora@pve created.")

    tabs.get_by_role("link", name="API tokens").click()
    page.select_option("#token-form select[name=userid]", "dora@pve")
    page.fill("#token-form input[name=name]", "ci")
    page.get_by_role("button", name="Create token").click()
    secret = page.get_by_test_id("pve-token-secret").inner_text()
    assert len(secret) == 36
    page.reload()  # the secret is gone with the answer that carried it
    assert page.get_by_test_id("pve-token-secret").count() == 0 and secret not in page.content()

    tabs.get_by_role("link", name="Permissions").click()
    page.fill("#acl-form input[name=path]", "/vms")
    page.select_option("#acl-form select[name=type]", "group")
    page.fill("#acl-form input[name=ugid]", "devs")
    page.select_option("#acl-form select[name=roleid]", "PVEVMUser")
    page.get_by_role("button", name="Add permission").click()
    page.wait_for_selector("text=PVEVMUser given to group devs on /vms.")

    tabs.get_by_role("link", name="Effective privileges").click()
    page.fill("#effective-form input[name=authid]", "dora@pve")
    page.fill("#effective-form input[name=path]", "/vms/100")
    page.get_by_role("button", name="Show").click()
    page.wait_for_selector("#effective-agrees")
    assert "VM.PowerMgmt" in page.locator("#effective-privileges").inner_text()
    assert "for group devs" in page.locator("#effective-grants").inner_text()

    tabs.get_by_role("link", name="Users").click()
    row = page.locator("#user-table tr", has_text="dora@pve")
    before = len(posts)
    row.get_by_role("button", name="Delete").click()
    dialog = page.locator("#confirm-dialog")
    dialog.wait_for(state="visible")
    assert dialog.locator("#confirm-title").inner_text() == "Delete user dora@pve"
    dialog.get_by_role("button", name="Cancel").click()
    dialog.wait_for(state="hidden")
    assert len(posts) == before
    with pve_client(pvesim) as client:
        assert pve_access.config(client, with_pools=False).user("dora@pve") is not None
    row.get_by_role("button", name="Delete").click()
    dialog.get_by_role("button", name="Delete user").click()
    page.wait_for_selector("text=User dora@pve deleted")
    with pve_client(pvesim) as client:
        assert pve_access.config(client, with_pools=False).user("dora@pve") is None
    assert problems == []
