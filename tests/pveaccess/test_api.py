"""/api/v1/pve-access/: operators manage a cluster's Proxmox users, groups, roles, ACL and API
tokens; input is checked before anything is sent; every change is audited; the effective
privileges are Proxmox's own; tenants get 404, auditors and read-only tokens cannot write."""

from __future__ import annotations

import pytest

from apps.proxmox import access as pve_access
from tests.fixtures import pve_client

pytestmark = pytest.mark.django_db


def url(cluster, rest=""):
    return f"/api/v1/pve-access/clusters/{cluster.pk}/{rest}"


def _results(body):
    return body["results"] if isinstance(body, dict) and "results" in body else body


def test_reads_show_what_proxmox_holds(api, access_cluster):
    users = _results(api.get(url(access_cluster, "users/")))
    alice = next(u for u in users if u["userid"] == "alice@pve")
    assert alice["groups"] == ["acme-admins"] and alice["realm"] == "pve"
    auditor = next(u for u in users if u["userid"] == "auditor@pve")
    assert [t["authid"] for t in auditor["tokens"]] == ["auditor@pve!monitoring"] and not auditor["tokens"][0]["privsep"]
    assert "value" not in auditor["tokens"][0]
    groups = _results(api.get(url(access_cluster, "groups/")))
    assert {"groupid": "acme-admins", "comment": "ACME tenant administrators", "members": ["alice@pve"]} in groups
    roles = {r["roleid"]: r for r in _results(api.get(url(access_cluster, "roles/")))}
    assert roles["PVEAuditor"]["special"] and "VM.Audit" in roles["PVEAuditor"]["privs"]
    privileges = api.get(url(access_cluster, "privileges/"))
    assert "Permissions.Modify" in privileges and privileges == sorted(privileges)
    acl = _results(api.get(url(access_cluster, "acl/")))
    assert {"path": "/pool/acme", "type": "group", "ugid": "acme-admins", "roleid": "PVEVMAdmin", "propagate": True} in acl
    pools = {p["poolid"]: p for p in _results(api.get(url(access_cluster, "pools/")))}
    assert 100 in pools["acme"]["vms"] and 103 in pools["globex"]["vms"]
    realms = {r["realm"] for r in _results(api.get(url(access_cluster, "realms/")))}
    assert {"pam", "pve"} <= realms
    tokens = [t["authid"] for t in _results(api.get(url(access_cluster, "tokens/")))]
    assert "auditor@pve!monitoring" in tokens


def test_bad_input_names_the_field_and_sends_nothing(api, access_cluster, pvesim):
    from apps.core.models import AuditEntry

    cases = [
        ("users/", {"userid": "dora"}, "userid"),
        ("users/", {"userid": "dora@nosuchrealm"}, "userid"),
        ("users/", {"userid": "dora@pve", "groups": ["nope"]}, "groups"),
        ("users/", {"userid": "alice@pve"}, "userid"),  # exists
        ("users/", {"userid": "dora@pam", "password": "long-enough-1"}, "password"),  # pam keeps no password
        ("groups/", {"groupid": "bad group"}, "groupid"),
        ("roles/", {"roleid": "PVEMine", "privs": ["VM.Audit"]}, "roleid"),
        ("roles/", {"roleid": "Mine", "privs": ["VM.Fly"]}, "privs"),
        ("acl/", {"path": "/vm/100", "type": "user", "ugid": "alice@pve", "roleid": "PVEAuditor"}, "path"),
        ("acl/", {"path": "/vms/100", "type": "user", "ugid": "alice@pve", "roleid": "NoSuchRole"}, "roleid"),
        ("acl/", {"path": "/vms/100", "type": "user", "ugid": "ghost@pve", "roleid": "PVEAuditor"}, "ugid"),
        ("acl/", {"path": "/vms/100", "type": "token", "ugid": "alice@pve!nope", "roleid": "PVEAuditor"}, "ugid"),
        ("users/alice@pve/tokens/", {"name": "1bad"}, "name"),
        ("users/auditor@pve/tokens/", {"name": "monitoring"}, "name"),  # exists
    ]
    for rest, body, field in cases:
        answer = api.post(url(access_cluster, rest), body, expect=400)
        assert field in answer["errors"], (rest, body, answer)
    with pve_client(pvesim) as client:
        cfg = pve_access.config(client)
    assert not any(u.userid.startswith("dora@") for u in cfg.users)
    assert not any(r.roleid in ("PVEMine", "Mine") for r in cfg.roles)
    assert not any(e.path == "/vms/100" for e in cfg.acl)
    assert not AuditEntry.objects.filter(action__startswith="pveaccess.").exists()  # nothing was sent


def test_create_grant_check_and_remove_with_audit(api, access_cluster, pvesim, operator):
    from django.db import connection

    from apps.core.models import AuditEntry

    api.post(url(access_cluster, "groups/"), {"groupid": "devs", "comment": "developers"}, expect=201)
    user = api.post(url(access_cluster, "users/"), {"userid": "dora@pve", "password": "dora-pass-123",
                                                    "groups": ["devs"], "email": "dora@example.com"}, expect=201)
    assert user["groups"] == ["devs"]
    created = api.post(url(access_cluster, "users/dora@pve/tokens/"), {"name": "ci"}, expect=201)
    assert created["authid"] == "dora@pve!ci" and created["privsep"] and created["value"]
    secret = created["value"]
    api.post(url(access_cluster, "acl/"), {"path": "//vms//", "type": "group", "ugid": "devs",
                                            "roleid": "PVEVMUser"}, expect=201)
    entry = api.post(url(access_cluster, "acl/"), {"path": "/vms/100", "type": "token", "ugid": "dora@pve!ci",
                                                    "roleid": "PVEVMAdmin", "propagate": False}, expect=201)
    assert entry["path"] == "/vms/100"
    role = api.post(url(access_cluster, "roles/"), {"roleid": "Snapshots", "privs": ["VM.Snapshot", "VM.Audit"]},
                    expect=201)
    assert role["privs"] == ["VM.Audit", "VM.Snapshot"] and not role["special"]

    # effective privileges: computed as Proxmox computes them, and Proxmox agrees
    for authid, path in [("dora@pve", "/vms/100"), ("dora@pve!ci", "/vms/100"), ("alice@pve", "/vms/100")]:
        answer = api.get(url(access_cluster, "permissions/"), {"authid": authid, "path": path})
        with pve_client(pvesim) as client:
            theirs = pve_access.permissions(client, authid, path)[path]
        assert answer["privileges"] == theirs and answer["agrees"], (authid, path, answer)
    token = api.get(url(access_cluster, "permissions/"), {"authid": "dora@pve!ci", "path": "/vms/100"})
    assert "VM.PowerMgmt" in token["privileges"] and "VM.Allocate" not in token["privileges"]  # the user lacks it
    assert any(g["ugid"] == "dora@pve!ci" for g in token["grants"])
    bad = api.get(url(access_cluster, "permissions/"), {"authid": "dora", "path": "/nowhere"}, expect=400)
    assert set(bad["errors"]) == {"authid", "path"}

    api.delete(url(access_cluster, "acl/") + "?path=/vms/100&type=token&ugid=dora@pve!ci&roleid=PVEVMAdmin")
    api.delete(url(access_cluster, "acl/") + "?path=/vms/100&type=token&ugid=dora@pve!ci&roleid=PVEVMAdmin",
               expect=400)  # gone already
    api.delete(url(access_cluster, "roles/Snapshots/"))
    api.delete(url(access_cluster, "roles/PVEAuditor/"), expect=400)  # built in
    api.delete(url(access_cluster, "users/dora@pve/tokens/ci/"))
    api.delete(url(access_cluster, "users/dora@pve/"))
    api.delete(url(access_cluster, "groups/devs/"))
    api.delete(url(access_cluster, "groups/devs/"), expect=404)
    with pve_client(pvesim) as client:
        cfg = pve_access.config(client)
    assert cfg.user("dora@pve") is None and not any(g.groupid == "devs" for g in cfg.groups)
    assert not any("dora" in e.ugid or e.ugid == "devs" for e in cfg.acl)

    actions = list(AuditEntry.objects.filter(action__startswith="pveaccess.").order_by("pk")
                   .values_list("action", "result", "user__username"))
    assert [a for a, _, _ in actions] == [
        "pveaccess.group_create", "pveaccess.user_create", "pveaccess.api_token_create", "pveaccess.acl_add",
        "pveaccess.acl_add", "pveaccess.role_create", "pveaccess.acl_remove", "pveaccess.role_delete",
        "pveaccess.api_token_delete", "pveaccess.user_delete", "pveaccess.group_delete"]
    assert {(r, u) for _, r, u in actions} == {("success", operator.username)}
    # the token's secret and the password are nowhere in the database
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM core_auditentry WHERE detail::text LIKE %s OR detail::text LIKE %s",
                       [f"%{secret}%", "%dora-pass-123%"])
        assert cursor.fetchone()[0] == 0


def test_the_portals_own_token_and_user_are_not_deleted(api, access_cluster):
    userid, name = access_cluster.token_id.split("!")
    answer = api.delete(url(access_cluster, f"users/{userid}/tokens/{name}/"), expect=400)
    assert "portal uses" in str(answer["errors"])
    api.delete(url(access_cluster, f"users/{userid}/"), expect=400)


def test_unreachable_cluster_is_503(api, db):
    from apps.nodes.models import Cluster

    dead = Cluster.objects.create(name="dead", api_url="https://127.0.0.1:9", token_id="root@pam!t",
                                  token_secret="s", tls_mode="insecure")
    answer = api.get(url(dead, "users/"), expect=503)
    assert "not available" in answer["detail"]
    api.post(url(dead, "groups/"), {"groupid": "x"}, expect=503)


def test_tenants_get_404_auditors_read_read_only_tokens_cannot_write(api_for, access_cluster, tenant_member,
                                                                     auditor):
    from rest_framework.test import APIClient

    from apps.permissions.models import ApiToken

    tenant = api_for(tenant_member)
    for rest in ("users/", "acl/", "roles/", "permissions/?authid=root@pam&path=/", "users/alice@pve/"):
        tenant.get(url(access_cluster, rest), expect=404)
    tenant.post(url(access_cluster, "groups/"), {"groupid": "x"}, expect=404)
    tenant.delete(url(access_cluster, "users/alice@pve/"), expect=404)

    reader = api_for(auditor)
    assert _results(reader.get(url(access_cluster, "groups/")))
    reader.post(url(access_cluster, "groups/"), {"groupid": "x"}, expect=403)

    _token, secret = ApiToken.objects.create(auditor, name="ro", read_only=True)
    client = APIClient(HTTP_AUTHORIZATION=f"Token {secret}")
    assert client.post(url(access_cluster, "groups/"), {"groupid": "x"}, format="json").status_code == 403
    assert client.delete(url(access_cluster, "users/alice@pve/")).status_code == 403


def test_changing_a_users_groups_changes_what_it_may_do(api, access_cluster, pvesim, client):
    base = url(access_cluster)
    api.post(base + "groups/", {"groupid": "devs"}, expect=201)
    api.post(base + "users/", {"userid": "dora@pve"}, expect=201)
    api.post(base + "acl/", {"path": "/vms", "type": "group", "ugid": "devs", "roleid": "PVEVMUser"}, expect=201)
    before = api.get(base + "permissions/", {"authid": "dora@pve", "path": "/vms/100"})
    assert before["privileges"] == {}
    answer = api.patch(base + "users/dora@pve/", {"groups": ["devs"], "comment": "on call"})
    assert answer["groups"] == ["devs"] and answer["comment"] == "on call"
    after = api.get(base + "permissions/", {"authid": "dora@pve", "path": "/vms/100"})
    assert "VM.PowerMgmt" in after["privileges"] and after["agrees"]
    assert "groups" in api.patch(base + "users/dora@pve/", {"groups": ["nope"]}, expect=400)["errors"]
    portal_user = access_cluster.token_id.split("!")[0]
    assert "enable" in api.patch(base + f"users/{portal_user}/", {"enable": False}, expect=400)["errors"]
    # the page's form does the same: no groups left, user disabled
    response = client.post(f"/access/{access_cluster.pk}/users/edit/", {"userid": "dora@pve"})
    assert response.status_code == 302
    with pve_client(pvesim) as pve:
        dora = pve_access.config(pve, with_pools=False).user("dora@pve")
    assert dora.groups == () and not dora.enable
