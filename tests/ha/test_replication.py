"""pvesim's storage replication as the portal reads it: jobs, their status per node, refusals."""

import pytest

from apps.proxmox import ProxmoxError
from apps.proxmox import ha as pve_ha


def test_jobs_status_and_refusals(pve, pvesim):
    jobs = pve_ha.replication_jobs(pve)
    assert [(j["id"], j["guest"], j["target"], j["source"]) for j in jobs] == [("201-0", 201, "pve1", "pve3")]
    status = pve_ha.replication_status(pve, "pve3")
    assert status[0]["fail_count"] == 0 and status[0]["last_sync"]
    assert isinstance(status[0]["duration"], (int, float))  # the last run's length is reported
    assert pve_ha.replication_status(pve, "pve1") == []  # jobs run from the guest's node
    with pytest.raises(ProxmoxError, match="missing replicate feature on volume 'ceph-rbd:vm-100-disk-0'"):
        pve_ha.replication_create(pve, "100-0", target="pve2")
    with pytest.raises(ProxmoxError, match="already replicated to node 'pve1'"):
        pve_ha.replication_create(pve, "201-1", target="pve1")
    pve_ha.replication_create(pve, "201-1", target="pve2", schedule="*/5", rate=50)
    assert {j["id"]: j.get("rate") for j in pve_ha.replication_jobs(pve)} == {"201-0": None, "201-1": 50}
    pvesim.admin("POST", "/local-node", node="pve2")  # the API answers from a node that stays up
    pvesim.admin("POST", "/nodes/pve1/power", state="off")
    try:
        failing = {s["id"]: s for s in pve_ha.replication_status(pve, "pve3")}
        assert failing["201-0"]["fail_count"] >= 1 and "pve1" in failing["201-0"]["error"]
        assert failing["201-1"]["fail_count"] == 0
    finally:
        pvesim.admin("POST", "/nodes/pve1/power", state="on")
    pve_ha.replication_delete(pve, "201-1")
    assert [j["id"] for j in pve_ha.replication_jobs(pve)] == ["201-0"]
