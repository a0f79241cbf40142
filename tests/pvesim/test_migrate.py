"""pvesim migration: precheck payload, qmigrate/vzmigrate tasks, their preconditions and failures."""

import re
import time

import pytest
from proxmoxer.core import ResourceException

from .conftest import eventually, task_log, wait_task


def _error(call, *args, **kwargs) -> ResourceException:
    with pytest.raises(ResourceException) as exc:
        call(*args, **kwargs)
    return exc.value


def _node_of(pve, vmid: int) -> str:
    return next(r["node"] for r in pve.cluster.resources.get(type="vm") if r["vmid"] == vmid)


def test_precheck_lists_allowed_nodes(pve):
    check = pve.nodes("pve2").qemu(101).migrate.get()
    assert check["running"] == 1
    assert sorted(check["allowed_nodes"]) == ["pve1", "pve3"]
    assert check["not_allowed_nodes"] == {}
    assert check["local_disks"] == [] and check["local_resources"] == []


def test_precheck_mapping_without_entry_on_target_is_not_allowed(pve):
    check = pve.nodes("pve1").qemu(102).migrate.get(target="pve2")
    assert check["allowed_nodes"] == []
    assert check["not_allowed_nodes"] == {"pve2": {"unavailable-resources": ["hostpci0"]},
                                          "pve3": {"unavailable-resources": ["hostpci0"]}}
    assert check["mapped-resources"] == ["hostpci0"]
    assert check["mapped-resource-info"] == {"hostpci0": {"name": "gpu-l40s"}}
    assert check["local_resources"] == ["hostpci0"]  # running and not live-migration-capable


def test_precheck_unavailable_storage_and_local_disks(pve):
    pve.storage("local-zfs").put(nodes="pve1,pve3")
    check = pve.nodes("pve3").lxc(201).migrate.get()
    assert check["allowed-nodes"] == ["pve1"]
    assert check["not-allowed-nodes"] == {"pve2": {"unavailable_storages": ["local-zfs"]}}
    volid = pve.nodes("pve3").storage("local-zfs").content.post(vmid=104, filename="vm-104-disk-1", size="1G")
    pve.nodes("pve3").qemu(104).config.put(scsi1=f"{volid},size=1G")
    check = pve.nodes("pve3").qemu(104).migrate.get()
    assert check["local_disks"] == [{"volid": volid, "size": 1024 ** 3, "is_attached": 1, "drivename": "scsi1"}]
    assert check["not_allowed_nodes"] == {"pve2": {"unavailable_storages": ["local-zfs"]}}


def test_online_migration_logs_progress_and_moves_the_guest(pve):
    upid = pve.nodes("pve2").qemu(101).migrate.post(target="pve3", online=1)
    assert upid.split(":")[5:7] == ["qmigrate", "101"]
    seen_lock = False
    while pve.nodes("pve2").tasks(upid).status.get()["status"] == "running":
        seen_lock = seen_lock or any(r.get("lock") == "migrate" for r in pve.cluster.resources.get(type="vm")
                                     if r["vmid"] == 101)
        time.sleep(0.02)
    assert wait_task(pve, upid)["exitstatus"] == "OK"
    assert seen_lock
    log = task_log(pve, upid)
    assert re.match(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d starting migration of VM 101 to node 'pve3' \(10\.10\.10\.13\)$", log[1])
    progress = [re.search(r"migration active, transferred ([\d.]+) (\w+) of ([\d.]+) (\w+) VM-state, ([\d.]+) MiB/s", line)
                for line in log]
    progress = [m for m in progress if m]
    assert len(progress) >= 4
    assert progress[-1].group(3, 4) == ("8.0", "GiB")
    assert log[-2].split(" ", 2)[2].startswith("migration finished successfully (duration ")
    assert log[-1] == "TASK OK"
    assert _node_of(pve, 101) == "pve3"
    status = next(r for r in pve.cluster.resources.get(type="vm") if r["vmid"] == 101)
    assert status["status"] == "running" and "lock" not in status


def test_offline_migration_moves_local_volumes(pve):
    upid = pve.nodes("pve3").lxc(201).migrate.post(target="pve1", restart=1)
    assert upid.split(":")[5] == "vzmigrate"
    assert wait_task(pve, upid)["exitstatus"] == "OK"
    log = task_log(pve, upid)
    assert any("shutdown CT 201" in line for line in log)
    assert any("found local volume 'local-zfs:subvol-201-disk-0'" in line for line in log)
    assert _node_of(pve, 201) == "pve1"
    on_pve1 = {v["volid"] for v in pve.nodes("pve1").storage("local-zfs").content.get()}
    on_pve3 = {v["volid"] for v in pve.nodes("pve3").storage("local-zfs").content.get()}
    assert "local-zfs:subvol-201-disk-0" in on_pve1 and "local-zfs:subvol-201-disk-0" not in on_pve3
    assert pve.nodes("pve1").lxc(201).status.current.get()["status"] == "running"


def test_sync_preconditions(pve):
    err = _error(pve.nodes("pve2").qemu(101).migrate.post, target="pve2", online=1)
    assert (err.status_code, err.errors) == (400, {"target": "target is local node."})
    err = _error(pve.nodes("pve2").qemu(101).migrate.post, target="pve3")
    assert (err.status_code, err.content) == (500, "can't migrate running VM without --online")
    err = _error(pve.nodes("pve2").qemu(101).migrate.post, target="pve9", online=1)
    assert err.content == "no such cluster node 'pve9'"
    err = _error(pve.nodes("pve1").qemu(101).migrate.post, target="pve3", online=1)
    assert err.content == "Configuration file 'nodes/pve1/qemu-server/101.conf' does not exist"
    err = _error(pve.nodes("pve3").lxc(201).migrate.post, target="pve1")
    assert err.content == "can't migrate running container without --online or --restart"


def test_lxc_online_is_not_implemented(pve):
    upid = pve.nodes("pve3").lxc(201).migrate.post(target="pve1", online=1)
    assert wait_task(pve, upid)["exitstatus"] == "migration aborted"
    assert task_log(pve, upid)[-2].endswith("lxc live migration is currently not implemented")
    assert _node_of(pve, 201) == "pve3"


def test_mapped_device_blocks_live_and_missing_target(pve):
    upid = pve.nodes("pve1").qemu(102).migrate.post(target="pve2", online=1)
    assert wait_task(pve, upid)["exitstatus"] == "migration aborted"
    assert task_log(pve, upid)[-2].endswith("can't migrate to 'pve2': missing mapped devices hostpci0")
    assert _node_of(pve, 102) == "pve1"


def test_raw_pci_device_blocks_migration(sim, pve):
    from proxmoxer import ProxmoxAPI
    root = ProxmoxAPI(sim.host, port=sim.info["port"], user="root@pam", password=sim.root_password, verify_ssl=False)
    root.nodes("pve3").qemu(104).config.put(hostpci0="0000:41:00.0")  # raw devices: root@pam only
    upid = pve.nodes("pve3").qemu(104).migrate.post(target="pve2")
    assert wait_task(pve, upid)["exitstatus"] == "migration aborted"
    assert task_log(pve, upid)[-2].endswith("can't migrate VM which uses local devices: hostpci0")


def test_locked_guest_cannot_migrate(pve):
    upid = pve.nodes("pve2").vzdump.post(vmid="101", storage="nfs-store")
    eventually(lambda: any(r.get("lock") == "backup" for r in pve.cluster.resources.get(type="vm") if r["vmid"] == 101))
    err = _error(pve.nodes("pve2").qemu(101).migrate.post, target="pve3", online=1)
    assert (err.status_code, err.content) == (500, "VM is locked (backup)")
    err = _error(pve.nodes("pve2").qemu(101).migrate.get)
    assert err.content == "VM is locked (backup)"
    assert wait_task(pve, upid)["exitstatus"] == "OK"


def test_target_powered_off_mid_migration_leaves_guest_on_source(sim, pve):
    upid = pve.nodes("pve2").qemu(101).migrate.post(target="pve3", online=1)
    eventually(lambda: any("migration active" in line for line in task_log(pve, upid)))
    sim.admin("POST", "/nodes/pve3/power", state="off")
    status = wait_task(pve, upid)
    assert status["exitstatus"] == "migration problems"
    log = task_log(pve, upid)
    assert any("ERROR: online migrate failure - " in line for line in log)
    assert log[-1] == "TASK ERROR: migration problems"
    vm = next(r for r in pve.cluster.resources.get(type="vm") if r["vmid"] == 101)
    assert vm["node"] == "pve2" and vm["status"] == "running" and "lock" not in vm


def test_offline_target_fails_at_prepare(sim, pve):
    sim.admin("POST", "/nodes/pve2/power", state="off")
    upid = pve.nodes("pve3").qemu(104).migrate.post(target="pve2")
    assert wait_task(pve, upid)["exitstatus"] == "migration aborted"
    assert task_log(pve, upid)[-2].endswith("Can't connect to destination address using public key")
    assert _node_of(pve, 104) == "pve3"


def test_injected_failure_aborts_migration(sim, pve):
    sim.admin("POST", "/faults/task-failure", type="qmigrate", message="simulated storage hiccup")
    upid = pve.nodes("pve3").qemu(104).migrate.post(target="pve1")
    assert wait_task(pve, upid)["exitstatus"] == "migration aborted"
    assert "ERROR: migration aborted" in task_log(pve, upid)[-2]
    assert task_log(pve, upid)[-2].endswith("simulated storage hiccup")
    assert _node_of(pve, 104) == "pve3"


def test_ha_managed_guest_forks_hamigrate(pve):
    upid = pve.nodes("pve1").qemu(100).migrate.post(target="pve2", online=1)
    assert upid.split(":")[5] == "hamigrate"
    assert wait_task(pve, upid)["exitstatus"] == "OK"
    assert task_log(pve, upid)[0] == "Requesting HA migration for VM 100 to node pve2"
