"""Pages under /access/: every tab renders what Proxmox holds; forms name the bad field and send
nothing; deletes ask through the confirm dialog; a Proxmox API token's secret is shown once."""

from __future__ import annotations

import re

import pytest
from django.test import Client

from apps.proxmox import access as pve_access
from tests.fixtures import pve_client

pytestmark = pytest.mark.django_db

TABS = ["users", "tokens", "groups", "roles", "acl", "effective", "pools", "realms"]


def page(cluster, tab):
    return f"/access/{cluster.pk}/{tab}/"


def test_every_tab_renders_for_operators_and_auditors(client, access_cluster, auditor):
    index = client.get("/access/")
    assert index.status_code == 302 and index["Location"] == page(access_cluster, "users")  # one cluster: straight to it
    expected = {"users": "alice@pve", "tokens": "auditor@pve!monitoring", "groups": "acme-admins",
                "roles": "PVEVMAdmin", "acl": "/pool/acme", "pools": "globex", "realms": "pam",
                "effective": "Effective privileges"}
    for tab in TABS:
        body = client.get(page(access_cluster, tab)).content.decode()
        assert expected[tab] in body, tab
        assert f'href="{page(access_cluster, tab)}" aria-current="page"' in body, tab  # its tab is marked
    users = client.get(page(access_cluster, "users")).content.decode()
    assert f'action="/access/{access_cluster.pk}/users/add/"' in users  # operators may create
    reader = Client()
    reader.force_login(auditor)
    body = reader.get(page(access_cluster, "users")).content.decode()
    assert "alice@pve" in body and "/users/add/" not in body and "data-confirm" not in body  # read only
    assert reader.post(f"/access/{access_cluster.pk}/groups/add/", {"groupid": "x"}).status_code == 403


def test_tenants_get_404_and_no_navigation_link(user_client, client, access_cluster, tenant_member):
    tenant = Client()
    tenant.force_login(tenant_member)
    assert tenant.get("/access/").status_code == 404
    for tab in TABS:
        assert tenant.get(page(access_cluster, tab)).status_code == 404
    assert tenant.post(f"/access/{access_cluster.pk}/groups/add/", {"groupid": "x"}).status_code == 404
    assert tenant.post(f"/access/{access_cluster.pk}/users/alice@pve/delete/").status_code == 404
    assert "Proxmox access" not in tenant.get("/").content.decode()
    assert ">Proxmox access<" in client.get("/").content.decode()


def test_forms_name_the_bad_field_and_send_nothing(client, access_cluster, pvesim):
    answer = client.post(f"/access/{access_cluster.pk}/users/add/", {"userid": "dora", "enable": "on"})
    assert answer.status_code == 200 and "not a user id of the form name@realm" in answer.content.decode()
    answer = client.post(f"/access/{access_cluster.pk}/users/add/", {"userid": "dora@nowhere"})
    assert answer.status_code == 200 and "no realm" in answer.content.decode()
    answer = client.post(f"/access/{access_cluster.pk}/acl/add/", {"path": "/vm/100", "type": "user",
                                                                   "ugid": "alice@pve", "roleid": "PVEAuditor"})
    assert answer.status_code == 200 and "invalid ACL path" in answer.content.decode()
    answer = client.post(f"/access/{access_cluster.pk}/roles/add/", {"roleid": "PVEx", "privs": ["VM.Audit"]})
    assert answer.status_code == 200 and "Proxmox&#x27;s own" in answer.content.decode()
    with pve_client(pvesim) as pve:
        cfg = pve_access.config(pve)
    assert cfg.user("dora@nowhere") is None and not any(e.path == "/vm/100" for e in cfg.acl)


def test_create_grant_explain_and_delete_through_the_pages(client, access_cluster, pvesim):
    base = f"/access/{access_cluster.pk}"
    answer = client.post(f"{base}/users/add/", {"userid": "dora@pve", "password": "dora-pass-123", "enable": "on"})
    assert answer.status_code == 302
    assert "User dora@pve created." in client.get(answer["Location"]).content.decode()

    created = client.post(f"{base}/tokens/add/", {"userid": "dora@pve", "name": "ci", "privsep": "on"})
    body = created.content.decode()
    secret = re.search(r'data-testid="pve-token-secret">([0-9a-f-]{36})<', body).group(1)
    assert "only this once" in body
    assert secret not in client.get(f"{base}/tokens/").content.decode()  # never again

    assert client.post(f"{base}/acl/add/", {"path": "/vms/100", "type": "token", "ugid": "dora@pve!ci",
                                            "roleid": "PVEVMUser", "propagate": "on"}).status_code == 302
    assert client.post(f"{base}/acl/add/", {"path": "/vms", "type": "user", "ugid": "dora@pve",
                                            "roleid": "PVEAuditor", "propagate": "on"}).status_code == 302
    effective = client.get(f"{base}/effective/", {"authid": "dora@pve!ci", "path": "/vms/100"}).content.decode()
    assert 'id="effective-agrees"' in effective and "VM.Audit" in effective
    assert "VM.PowerMgmt" not in effective  # the token's role has it, its user does not
    assert "PVEVMUser on <span class=\"mono\">/vms/100</span>" in effective

    acl = client.get(f"{base}/acl/").content.decode()
    assert 'data-confirm="Remove PVEVMUser on /vms/100 from token dora@pve!ci?"' in acl
    assert client.post(f"{base}/acl/delete/", {"path": "/vms/100", "type": "token", "ugid": "dora@pve!ci",
                                               "roleid": "PVEVMUser"}).status_code == 302
    tokens = client.get(f"{base}/tokens/").content.decode()
    assert "data-confirm-title=\"Delete API token dora@pve!ci\"" in tokens
    assert client.post(f"{base}/tokens/dora@pve/ci/delete/").status_code == 302
    users = client.get(f"{base}/users/").content.decode()
    assert "data-confirm-title=\"Delete user dora@pve\"" in users
    assert client.post(f"{base}/users/dora@pve/delete/").status_code == 302
    gone = client.post(f"{base}/users/dora@pve/delete/", follow=True).content.decode()
    assert "no such user dora@pve" in gone
    with pve_client(pvesim) as pve:
        cfg = pve_access.config(pve)
    assert cfg.user("dora@pve") is None and not any("dora" in e.ugid for e in cfg.acl)


def test_an_unreachable_cluster_says_so(client, db):
    from apps.nodes.models import Cluster

    dead = Cluster.objects.create(name="dead", api_url="https://127.0.0.1:9", token_id="root@pam!t", token_secret="s",
                                  tls_mode="insecure")
    answer = client.get(page(dead, "users"))
    assert answer.status_code == 502 and "not available" in answer.content.decode()
