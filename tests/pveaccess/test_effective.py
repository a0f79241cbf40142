"""The portal's effective privileges (apps.proxmox.access.effective) against Proxmox's own answer
(pvesim's GET /access/permissions) for users, groups, tokens, pools, NoAccess and propagation."""

from __future__ import annotations

import pytest

from apps.proxmox import access as pve_access
from tests.fixtures import pve_client

PATHS = ["/", "/vms", "/vms/100", "/vms/103", "/storage/local", "/pool/acme", "/nodes", "/nodes/pve1", "/access",
         "/access/groups"]


def _setup(client, *, with_nonpropagating: bool = True):
    """Users, groups, tokens and ACL entries that exercise each rule."""
    pve_access.group_create(client, "devs")
    pve_access.group_create(client, "ops")
    pve_access.user_create(client, "dora@pve", groups=("devs",))
    pve_access.user_create(client, "otto@pve", groups=("devs", "ops"))
    pve_access.user_create(client, "nina@pve")
    pve_access.token_create(client, "dora@pve", "ci", privsep=True)
    acl = [
        ("/", "PVEAuditor", "group", "devs", True),
        ("/vms", "PVEVMUser", "group", "devs", True),
        ("/vms/100", "NoAccess", "user", "dora@pve", True),  # user beats group, NoAccess cancels
        ("/vms", "PVEVMAdmin", "group", "ops", True),
        ("/pool/acme", "PVEVMAdmin", "user", "nina@pve", True),  # pool roles reach its members
        ("/pool/globex", "NoAccess", "user", "otto@pve", True),  # a pool's NoAccess beats the member's roles
        ("/storage", "PVEDatastoreUser", "token", "dora@pve!ci", True),
        ("/vms", "PVEVMAdmin", "token", "dora@pve!ci", True),  # more than its user: cut to the intersection
    ]
    if with_nonpropagating:
        acl.append(("/nodes", "PVESysAdmin", "user", "nina@pve", False))  # only on /nodes itself
        acl.append(("/access", "PVEUserAdmin", "group", "ops", False))
    for path, role, kind, ugid, propagate in acl:
        pve_access.acl_change(client, path=path, roles=(role,), type=kind, ugid=ugid, propagate=propagate)


def _compare(client, subjects):
    cfg = pve_access.config(client)
    mismatches = []
    for authid in subjects:
        for path in PATHS:
            ours = pve_access.effective(cfg, authid, path).privileges
            theirs = pve_access.permissions(client, authid, path).get(path, {})
            if ours != theirs:
                mismatches.append(f"{authid} on {path}: ours {sorted(ours.items())} != proxmox {sorted(theirs.items())}")
        if pve_access.effective_all(cfg, authid) != pve_access.permissions(client, authid):
            mismatches.append(f"{authid}: the all-paths answer differs")
    return mismatches


SUBJECTS = ["dora@pve", "otto@pve", "nina@pve", "dora@pve!ci", "alice@pve", "auditor@pve",
            "auditor@pve!monitoring", "root@pam", "ghost@pve"]


@pytest.mark.sparse
def test_effective_privileges_match_proxmox(pvesim):
    pvesim.reset()
    with pve_client(pvesim) as client:
        # a sparse Proxmox leaves out `propagate` (schema default 1): only propagating entries there
        sparse = getattr(pvesim, "mode", "full") == "sparse"
        _setup(client, with_nonpropagating=not sparse)
        # ... and `privsep` (default 1): the demo's privsep=0 token reads as separated there
        subjects = [s for s in SUBJECTS if not (sparse and s == "auditor@pve!monitoring")]
        assert _compare(client, subjects) == []


def test_token_without_privilege_separation_has_its_users_privileges(pvesim):
    pvesim.reset()
    with pve_client(pvesim) as client:
        _setup(client)
        pve_access.token_create(client, "otto@pve", "full", privsep=False)
        pve_access.acl_change(client, path="/", roles=("Administrator",), type="token", ugid="otto@pve!full")
        assert _compare(client, ["otto@pve!full", "nina@pve"]) == []
        cfg = pve_access.config(client)
        full = pve_access.effective(cfg, "otto@pve!full", "/vms/200")
        assert "Sys.Modify" not in full.privileges and "VM.Allocate" in full.privileges  # the user's, not its ACL


def test_explanations_name_the_entries_that_decide(pvesim):
    pvesim.reset()
    with pve_client(pvesim) as client:
        _setup(client)
        cfg = pve_access.config(client)
    dora = pve_access.effective(cfg, "dora@pve", "/vms/100")
    assert dora.privileges == {} and dora.roles == {"NoAccess": True}
    assert [(g.path, g.type, g.ugid) for g in dora.grants] == [("/vms/100", "user", "dora@pve")]
    nina = pve_access.effective(cfg, "nina@pve", "/vms/100")  # VM 100 is in pool acme
    assert nina.privileges and not any(nina.privileges.values())  # pool roles never propagate
    assert {g.pool for g in nina.grants} == {"acme"}
    token = pve_access.effective(cfg, "dora@pve!ci", "/vms/101")
    assert set(token.privileges) == set(token.user.privileges) & set(token.own.privileges)
    assert "VM.Allocate" in token.own.privileges and "VM.Allocate" not in token.privileges


def test_acl_path_and_userid_validation():
    assert pve_access.acl_path_error("/vms/100") is None
    assert pve_access.acl_path_error("//pool//acme/") is None  # normalized as Proxmox does
    assert pve_access.acl_path_error("/mapping/pci/gpu-a10") is None
    for bad in ("", "/vm/100", "/vms/12", "/nodes/a/b", "/pool/a/b/c/d", "/storage/lo cal"):
        assert pve_access.acl_path_error(bad), bad
    assert pve_access.userid_error("alice@pve") is None
    for bad in ("alice", "al ice@pve", "alice@", "a/b@pve", "x@1realm", "a" * 70 + "@pve"):
        assert pve_access.userid_error(bad), bad
