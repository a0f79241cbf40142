"""Access control through the API: users, tokens, groups, roles, ACLs, effective permissions, pools."""

import pytest
from proxmoxer import ProxmoxAPI
from proxmoxer.core import ResourceException

pytestmark = pytest.mark.filterwarnings("ignore::urllib3.exceptions.InsecureRequestWarning")


def error(call) -> ResourceException:
    with pytest.raises(ResourceException) as exc:
        call()
    return exc.value


def client(sim, full_tokenid: str, secret: str) -> ProxmoxAPI:
    user, token = full_tokenid.split("!")
    return ProxmoxAPI(sim.host, port=sim.info["port"], user=user, token_name=token, token_value=secret,
                      verify_ssl=False, timeout=30)


def perms(pve, authid: str, path: str) -> dict:
    return pve.access.permissions.get(userid=authid, path=path)[path]


@pytest.fixture
def limited(sim, pve):
    """alice@pve!t1: privilege-separated, PVEAuditor on /pool/acme only."""
    token = pve.access.users("alice@pve").token("t1").post(privsep=1, comment="limited")
    pve.access.acl.put(path="/pool/acme", roles="PVEAuditor", tokens="alice@pve!t1")
    return client(sim, token["full-tokenid"], token["value"])


# ---- users -----------------------------------------------------------------------------------

def test_user_crud(pve):
    pve.access.users.post(userid="bob@pve", password="bob-secret-1", email="bob@example.com", groups="acme-admins",
                          comment="new hire")
    user = pve.access.users("bob@pve").get()
    assert user["email"] == "bob@example.com" and user["groups"] == ["acme-admins"] and user["enable"] == 1
    pve.access.groups.post(groupid="ops")
    pve.access.users("bob@pve").put(groups="ops", append=1, firstname="Bob")
    assert sorted(pve.access.users("bob@pve").get()["groups"]) == ["acme-admins", "ops"]
    pve.access.users("bob@pve").put(groups="ops")
    assert pve.access.users("bob@pve").get()["groups"] == ["ops"]
    listed = {u["userid"]: u for u in pve.access.users.get(full=1)}
    assert listed["bob@pve"]["groups"] == "ops" and listed["bob@pve"]["firstname"] == "Bob"
    assert listed["bob@pve"]["realm-type"] == "pve"
    pve.access.users("bob@pve").delete()
    assert "bob@pve" not in {u["userid"] for u in pve.access.users.get()}
    assert error(lambda: pve.access.users("bob@pve").get()).content == "no such user ('bob@pve')"


def test_user_errors(pve):
    exc = error(lambda: pve.access.users.post(userid="alice@pve"))
    assert exc.status_code == 500 and exc.content == "create user failed: user 'alice@pve' already exists"
    assert error(lambda: pve.access.users.post(userid="x@pve", groups="nope")).content == \
        "create user failed: no such group 'nope'"
    assert error(lambda: pve.access.users.post(userid="no-realm")).errors == {
        "userid": "invalid format - value 'no-realm' does not look like a valid user name"}
    assert error(lambda: pve.access.users.post(userid="x@pve", password="short")).errors == {
        "password": "value must have at least 8 characters"}
    assert error(lambda: pve.access.users("alice@pve").put(append=1)).errors == {
        "groups": "missing property - 'append' requires this property"}
    assert "x@pve" not in {u["userid"] for u in pve.access.users.get()}


def test_disabled_user_is_filtered_and_cannot_log_in(sim, pve):
    pve.access.users("alice@pve").put(enable=0)
    assert [u["userid"] for u in pve.access.users.get(enabled=0)] == ["alice@pve"]
    from proxmoxer.core import AuthenticationError
    with pytest.raises(AuthenticationError):
        ProxmoxAPI(sim.host, port=sim.info["port"], user="alice@pve", password="alice-secret", verify_ssl=False)


# ---- tokens ----------------------------------------------------------------------------------

def test_token_crud_value_shown_once(sim, pve):
    created = pve.access.users("alice@pve").token("ci").post(comment="pipeline", expire=0)
    assert created["full-tokenid"] == "alice@pve!ci"
    assert created["info"] == {"privsep": 1, "expire": 0, "comment": "pipeline"}
    assert len(created["value"]) == 36
    assert pve.access.users("alice@pve").token("ci").get() == {"privsep": 1, "expire": 0, "comment": "pipeline"}
    assert pve.access.users("alice@pve").token.get() == [{"tokenid": "ci", "privsep": 1, "expire": 0, "comment": "pipeline"}]
    full = {u["userid"]: u for u in pve.access.users.get(full=1)}
    assert full["alice@pve"]["tokens"] == [{"tokenid": "ci", "privsep": 1, "expire": 0, "comment": "pipeline"}]
    assert "value" not in str(pve.access.users("alice@pve").get())

    updated = pve.access.users("alice@pve").token("ci").put(privsep=0, comment="")
    assert updated["privsep"] == 0
    assert client(sim, "alice@pve!ci", created["value"]).version.get()["release"] == "9.1"

    exc = error(lambda: pve.access.users("alice@pve").token("ci").post())
    assert exc.status_code == 400 and exc.errors == {"tokenid": "Token already exists."}
    pve.access.users("alice@pve").token("ci").delete()
    assert error(lambda: client(sim, "alice@pve!ci", created["value"]).version.get()).status_code == 401
    assert error(lambda: pve.access.users("alice@pve").token("ci").get()).content == \
        "no such token 'ci' for user 'alice@pve'"


def test_expired_token_is_rejected(sim, pve):
    created = pve.access.users("alice@pve").token("old").post(expire=1000)
    assert error(lambda: client(sim, "alice@pve!old", created["value"]).version.get()).status_code == 401


def test_tokens_of_deleted_user_stop_working(sim, pve):
    pve.access.users.post(userid="tmp@pve")
    created = pve.access.users("tmp@pve").token("tk").post(privsep=0)
    pve.access.users("tmp@pve").delete()
    assert error(lambda: client(sim, "tmp@pve!tk", created["value"]).version.get()).status_code == 401


# ---- groups and roles ------------------------------------------------------------------------

def test_group_crud(pve):
    pve.access.groups.post(groupid="noc", comment="network ops")
    pve.access.users("auditor@pve").put(groups="noc")
    assert pve.access.groups("noc").get() == {"comment": "network ops", "members": ["auditor@pve"]}
    assert {"groupid": "noc", "comment": "network ops", "users": "auditor@pve"} in pve.access.groups.get()
    assert error(lambda: pve.access.groups.post(groupid="noc")).content == "create group failed: group 'noc' already exists"
    pve.access.acl.put(path="/nodes", roles="PVEAuditor", groups="noc")
    pve.access.groups("noc").delete()
    assert pve.access.users("auditor@pve").get()["groups"] == []
    assert not [a for a in pve.access.acl.get() if a["ugid"] == "noc"]
    assert error(lambda: pve.access.groups("noc").get()).content == "group 'noc' does not exist"


def test_role_crud_and_reserved_names(pve):
    pve.access.roles.post(roleid="Operator", privs="VM.PowerMgmt,VM.Audit")
    assert pve.access.roles("Operator").get() == {"VM.Audit": 1, "VM.PowerMgmt": 1}
    pve.access.roles("Operator").put(privs="VM.Console", append=1)
    assert {"roleid": "Operator", "privs": "VM.Audit,VM.Console,VM.PowerMgmt", "special": 0} in pve.access.roles.get()
    assert error(lambda: pve.access.roles.post(roleid="pveCustom")).errors == {
        "roleid": "cannot use role ID starting with the (case-insensitive) 'PVE' namespace"}
    assert error(lambda: pve.access.roles("PVEAuditor").put(privs="Sys.Modify")).content == \
        "auto-generated role 'PVEAuditor' cannot be modified"
    assert error(lambda: pve.access.roles("Administrator").delete()).content == \
        "auto-generated role 'Administrator' cannot be deleted"
    assert error(lambda: pve.access.roles.post(roleid="Bad", privs="VM.Fly")).content == \
        "create role failed: invalid privilege 'VM.Fly'"
    pve.access.roles("Operator").delete()
    assert error(lambda: pve.access.roles("Operator").get()).content == "role 'Operator' does not exist"
    assert {r["roleid"]: r["special"] for r in pve.access.roles.get()}["PVEVMAdmin"] == 1


# ---- ACLs ------------------------------------------------------------------------------------

def test_acl_put_list_delete(pve):
    pve.access.acl.put(path="/vms/100", roles="PVEVMUser,PVEAuditor", users="auditor@pve", propagate=0)
    mine = [a for a in pve.access.acl.get() if a["path"] == "/vms/100"]
    assert sorted((a["roleid"], a["type"], a["ugid"], a["propagate"]) for a in mine) == [
        ("PVEAuditor", "user", "auditor@pve", 0), ("PVEVMUser", "user", "auditor@pve", 0)]
    pve.access.acl.put(path="/vms/100", roles="PVEVMUser", users="auditor@pve", delete=1)
    assert [a["roleid"] for a in pve.access.acl.get() if a["path"] == "/vms/100"] == ["PVEAuditor"]


def test_acl_validation(pve):
    assert error(lambda: pve.access.acl.put(path="/vms/100", roles="PVEAuditor")).errors == {
        k: "either 'users', 'groups' or 'tokens' is required." for k in ("users", "groups", "tokens")}
    for bad in ("/bogus", "/vms/abc", "/pool/a/b/c/d", "/nodes/pve1/extra"):
        assert error(lambda: pve.access.acl.put(path=bad, roles="PVEAuditor", users="alice@pve")).errors == {
            "path": f"invalid ACL path '{bad}'"}
    for good in ("/", "/access/groups/acme-admins", "/sdn/zones/z1/vnet1/100", "/mapping/pci/gpu-l40s", "/pool/a/b"):
        pve.access.acl.put(path=good, roles="PVEAuditor", users="auditor@pve")
    assert error(lambda: pve.access.acl.put(path="/", roles="Nope", users="alice@pve")).content == \
        "ACL update failed: role 'Nope' does not exist"
    assert error(lambda: pve.access.acl.put(path="/", roles="PVEAuditor", users="alice@pve,ghost@pve")).content == \
        "ACL update failed: user 'ghost@pve' does not exist"
    assert error(lambda: pve.access.acl.put(path="/", roles="PVEAuditor", tokens="alice@pve!nope")).content == \
        "ACL update failed: no such token 'nope' for user 'alice@pve'"
    assert not [a for a in pve.access.acl.get() if a["path"] == "/" and a["ugid"] == "alice@pve"]  # all or nothing


# ---- §6.3 semantics through /access/permissions ---------------------------------------------

def test_propagation_and_deeper_acl_replaces_inherited(pve):
    pve.access.acl.put(path="/vms", roles="PVEVMAdmin", users="alice@pve", propagate=0)
    assert "VM.Allocate" in perms(pve, "alice@pve", "/vms")
    assert perms(pve, "alice@pve", "/vms/104") == {}  # not propagated, 104 is outside her pool
    pve.access.acl.put(path="/", roles="PVEAdmin", users="alice@pve")
    pve.access.acl.put(path="/vms/9000", roles="PVEAuditor", users="alice@pve")
    assert set(perms(pve, "alice@pve", "/vms/9000")) == {"VM.Audit", "VM.GuestAgent.Audit", "Mapping.Audit",
                                                       "Datastore.Audit", "Pool.Audit", "SDN.Audit", "Sys.Audit"}
    assert "Sys.Console" in perms(pve, "alice@pve", "/nodes/pve1")
    # pool members also get the roles of their pool's path, which inherits PVEAdmin from /
    assert "VM.Allocate" in perms(pve, "alice@pve", "/vms/104")


def test_user_acl_replaces_group_acl_on_same_path(pve):
    pve.access.acl.put(path="/vms/104", roles="PVEVMAdmin", groups="acme-admins")
    assert "VM.PowerMgmt" in perms(pve, "alice@pve", "/vms/104")
    pve.access.acl.put(path="/vms/104", roles="PVEAuditor", users="alice@pve")
    assert "VM.PowerMgmt" not in perms(pve, "alice@pve", "/vms/104")
    assert "VM.Audit" in perms(pve, "alice@pve", "/vms/104")


def test_pool_roles_reach_members_and_noaccess(pve):
    assert perms(pve, "alice@pve", "/vms/100")["VM.PowerMgmt"] == 0  # via /pool/acme, never propagating
    assert perms(pve, "alice@pve", "/vms/103") == {}  # globex member
    pve.access.acl.put(path="/vms/100", roles="NoAccess", users="alice@pve")
    assert perms(pve, "alice@pve", "/vms/100") == {}  # a direct NoAccess beats pool roles
    pve.access.acl.put(path="/", roles="PVEAuditor", users="alice@pve")
    pve.access.acl.put(path="/pool/acme", roles="NoAccess", users="alice@pve")
    assert perms(pve, "alice@pve", "/vms/101") == {}  # a pool NoAccess beats the inherited /
    assert "VM.Audit" in perms(pve, "alice@pve", "/vms/104")


def test_root_bypasses_and_privsep_intersects(pve):
    assert len(perms(pve, "root@pam", "/vms/999")) > 40
    created = pve.access.users("alice@pve").token("wide").post(privsep=1)
    pve.access.acl.put(path="/", roles="Administrator", tokens=created["full-tokenid"])
    assert perms(pve, "alice@pve!wide", "/") == {}  # alice herself has nothing on /
    assert set(perms(pve, "alice@pve!wide", "/vms/100")) == set(perms(pve, "alice@pve", "/vms/100"))
    pve.access.users("alice@pve").token("wide").put(privsep=0)
    assert perms(pve, "alice@pve!wide", "/vms/100") == perms(pve, "alice@pve", "/vms/100")


def test_effective_permissions_listing(pve):
    listing = pve.access.permissions.get(userid="alice@pve")
    assert set(listing) == {"/pool/acme", "/vms/100", "/vms/101", "/vms/102", "/vms/200"}
    assert listing["/pool/acme"]["VM.Allocate"] == 1


# ---- a limited token against the rest of the API --------------------------------------------

def test_limited_token_gets_403_outside_its_acl(pve, limited):
    exc = error(lambda: limited.nodes("pve3").qemu(104).firewall.rules.get())
    assert exc.status_code == 403 and exc.content == "Permission check failed (/vms/104, VM.Audit)"
    assert limited.nodes("pve1").qemu(100).firewall.rules.get() == []  # inside /pool/acme
    assert error(lambda: limited.nodes("pve1").qemu(100).firewall.options.put(enable=1)).content == \
        "Permission check failed (/vms/100, VM.Config.Network)"
    assert error(lambda: limited.cluster.status.get()).content == "Permission check failed (/, Sys.Audit)"
    assert error(lambda: limited.access.users.post(userid="evil@pve")).status_code == 403
    assert error(lambda: limited.access.acl.put(path="/", roles="Administrator", tokens="alice@pve!t1")).status_code == 403
    assert error(lambda: limited.pools.post(poolid="mine")).content == "Permission check failed (/pool/mine, Pool.Allocate)"
    assert limited.access.permissions.get(path="/vms/100") == {"/vms/100": {"VM.Audit": 0, "VM.GuestAgent.Audit": 0}}
    assert error(lambda: limited.access.permissions.get(userid="root@pam")).content == \
        "Permission check failed (/access, Sys.Audit)"


def test_limited_token_sees_filtered_resources(pve, limited):
    everything = {r["id"] for r in pve.cluster.resources.get()}
    assert {"qemu/103", "qemu/104", "lxc/201", "storage/pve1/ceph-rbd", "/pool/globex"} <= everything
    visible = limited.cluster.resources.get()
    guests = sorted(r["id"] for r in visible if r["type"] in ("qemu", "lxc"))
    assert guests == ["lxc/200", "qemu/100", "qemu/101", "qemu/102"]
    assert not [r for r in visible if r["type"] == "storage"]
    # Pool.Audit comes with the token's PVEAuditor but alice's own PVEVMAdmin lacks it: privsep intersects
    assert not [r for r in visible if r["type"] == "pool"]
    assert all("maxcpu" not in r for r in visible if r["type"] == "node")  # no Sys.Audit on nodes


def test_password_change_needs_a_ticket(sim, pve):
    exc = error(lambda: pve.access.password.put(userid="alice@pve", password="new-password-1"))
    assert exc.status_code == 403 and "not available with API token" in exc.content
    alice = ProxmoxAPI(sim.host, port=sim.info["port"], user="alice@pve", password="alice-secret", verify_ssl=False)
    assert error(lambda: alice.access.password.put(userid="auditor@pve", password="new-password-1")).status_code == 403
    alice.access.password.put(userid="alice@pve", password="new-password-1")
    again = ProxmoxAPI(sim.host, port=sim.info["port"], user="alice@pve", password="new-password-1", verify_ssl=False)
    assert {u["userid"] for u in again.access.users.get()} == {"alice@pve"}  # only herself


def test_ticket_capabilities_follow_acls(sim, pve):
    ticket = sim._session.post(f"{sim.url}/api2/json/access/ticket", data={"username": "alice@pve",
                               "password": "alice-secret"}, verify=False).json()["data"]
    assert "VM.PowerMgmt" in ticket["cap"]["vms"] and ticket["cap"]["nodes"] == {}
    assert "clustername" not in ticket


# ---- pools -----------------------------------------------------------------------------------

def test_pool_crud_and_membership(pve):
    pve.pools.post(poolid="initech", comment="Initech")
    assert {"poolid": "initech", "comment": "Initech"} in pve.pools.get()
    assert error(lambda: pve.pools.post(poolid="initech")).content == "create pool failed: pool 'initech' already exists"
    exc = error(lambda: pve.pools.put(poolid="initech", vms="100"))
    assert exc.content == "update pools failed: VM 100 belongs already to pool 'acme' and 'allow-move' is not set"
    pve.pools.put(poolid="initech", vms="100", **{"allow-move": 1})
    pve.pools.put(poolid="initech", storage="nfs-store")
    pool = pve.pools.get(poolid="initech")[0]
    assert [(m["id"], m["type"]) for m in pool["members"]] == [("qemu/100", "qemu"), ("storage/pve1/nfs-store", "storage")]
    assert pool["members"][0]["vmid"] == 100 and pool["members"][0]["node"] == "pve1"
    assert [m["id"] for m in pve.pools.get(poolid="initech", type="storage")[0]["members"]] == ["storage/pve1/nfs-store"]
    assert 100 not in [m.get("vmid") for m in pve.pools("acme").get()["members"]]
    assert error(lambda: pve.pools.delete(poolid="initech")).content == \
        "delete pool failed: pool 'initech' is not empty (contains VM 100)"
    assert error(lambda: pve.pools.put(poolid="initech", vms="101", delete=1)).content == \
        "update pools failed: VM 101 is not a pool member"
    pve.pools("initech").put(vms="100", storage="nfs-store", delete=1)
    pve.pools.delete(poolid="initech")
    assert "initech" not in {p["poolid"] for p in pve.pools.get()}
    assert error(lambda: pve.pools("initech").get()).content == "pool 'initech' does not exist"


def test_pool_membership_grants_pool_acls(pve):
    assert perms(pve, "alice@pve", "/vms/104") == {}
    pve.pools.put(poolid="acme", vms="104", **{"allow-move": 1})
    assert "VM.PowerMgmt" in perms(pve, "alice@pve", "/vms/104")


def test_nested_pools(pve):
    assert error(lambda: pve.pools.post(poolid="dept/team")).content == \
        "create pool failed: parent 'dept' does not exist"
    pve.pools.post(poolid="dept")
    pve.pools.post(poolid="dept/team")
    assert error(lambda: pve.pools.delete(poolid="dept")).content == \
        "delete pool failed: pool 'dept' is not empty (contains pool 'dept/team')"


def test_group_membership_changes_apply_at_once(pve):
    assert "VM.PowerMgmt" in perms(pve, "alice@pve", "/vms/100")
    pve.access.users("alice@pve").put(groups="")
    assert perms(pve, "alice@pve", "/vms/100") == {}
    pve.access.users("alice@pve").put(groups="acme-admins")
    assert "VM.PowerMgmt" in perms(pve, "alice@pve", "/vms/100")
    pve.access.groups("acme-admins").delete()
    assert perms(pve, "alice@pve", "/vms/100") == {}
