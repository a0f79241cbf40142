"""pvesim backups: vzdump tasks, backup volumes, jobs and schedules, restore round trips."""

import re
import time

import pytest
from proxmoxer.core import ResourceException

from .conftest import eventually, task_log, wait_task


def _error(call, *args, **kwargs) -> ResourceException:
    with pytest.raises(ResourceException) as exc:
        call(*args, **kwargs)
    return exc.value


def _backups(pve, vmid, storage="nfs-store", node="pve1"):
    return [v for v in pve.nodes(node).storage(storage).content.get(content="backup") if v.get("vmid") == vmid]


def test_vzdump_logs_progress_and_adds_a_backup_volume(pve):
    upid = pve.nodes("pve1").vzdump.post(vmid="100", storage="nfs-store", compress="zstd", mode="snapshot",
                                         **{"notes-template": "{{guestname}} on {{node}}"})
    assert upid.split(":")[5:7] == ["vzdump", "100"]
    seen_lock = False
    while pve.nodes("pve1").tasks(upid).status.get()["status"] == "running":
        vm = next(r for r in pve.cluster.resources.get(type="vm") if r["vmid"] == 100)
        seen_lock = seen_lock or vm.get("lock") == "backup"
        time.sleep(0.02)
    assert wait_task(pve, upid)["exitstatus"] == "OK"
    assert seen_lock
    log = task_log(pve, upid)
    assert log[0].startswith("INFO: starting new backup job: vzdump 100 ")
    assert "INFO: Starting Backup of VM 100 (qemu)" in log
    assert any(re.fullmatch(r"INFO:  \d\d% \([\d.]+ \w+ of 32\.0 GiB\) in .*", line) for line in log)
    assert "INFO: 100% (32.0 GiB of 32.0 GiB)" in "\n".join(log)
    assert log[-2:] == ["INFO: Backup job finished successfully", "TASK OK"]
    [backup] = _backups(pve, 100)
    assert re.fullmatch(r"nfs-store:backup/vzdump-qemu-100-\d{4}_\d\d_\d\d-\d\d_\d\d_\d\d\.vma\.zst", backup["volid"])
    assert backup["notes"] == "web-01 on pve1" and backup["format"] == "vma.zst"
    vm = next(r for r in pve.cluster.resources.get(type="vm") if r["vmid"] == 100)
    assert "lock" not in vm and vm["status"] == "running"
    config = pve.nodes("pve1").vzdump.extractconfig.get(volume=backup["volid"])
    assert "name: web-01\n" in config and "scsi0: ceph-rbd:vm-100-disk-0" in config


def test_vzdump_lxc_stop_mode_restarts_the_container(pve):
    upid = pve.nodes("pve1").vzdump.post(vmid="200", storage="local", mode="stop", compress="gzip")
    assert wait_task(pve, upid)["exitstatus"] == "OK"
    log = task_log(pve, upid)
    assert "INFO: stopping virtual guest" in log and "INFO: restarting vm" in log
    [backup] = _backups(pve, 200, storage="local")
    assert backup["volid"].endswith(".tar.gz") and backup["subtype"] == "lxc"
    assert pve.nodes("pve1").lxc(200).status.current.get()["status"] == "running"


def test_vzdump_parameter_and_storage_errors(pve):
    err = _error(pve.nodes("pve1").vzdump.post, storage="local")
    assert err.errors == {"vmid": "property is missing"}
    err = _error(pve.nodes("pve1").vzdump.post, vmid="100", all=1)
    assert err.errors == {"all": "option conflicts with option 'vmid'"}
    err = _error(pve.nodes("pve1").vzdump.post, vmid="100", mode="live")
    assert "enumeration" in err.errors["mode"]
    upid = pve.nodes("pve1").vzdump.post(vmid="100", storage="ceph-rbd")
    assert wait_task(pve, upid)["exitstatus"] == (
        "could not get storage information for 'ceph-rbd': can't use storage 'ceph-rbd' for backups - wrong content type")
    # guests on other nodes: PVE exits silently without a task
    assert pve.nodes("pve1").vzdump.post(vmid="101") == "OK"


def test_guest_holds_the_backup_lock(pve):
    first = pve.nodes("pve1").vzdump.post(vmid="100", storage="nfs-store")
    eventually(lambda: next(r for r in pve.cluster.resources.get(type="vm") if r["vmid"] == 100).get("lock") == "backup")
    err = _error(pve.nodes("pve1").qemu(100).migrate.post, target="pve2", online=1)
    assert err.content == "VM is locked (backup)"
    assert wait_task(pve, first)["exitstatus"] == "OK"


def test_backup_of_a_guest_locked_by_another_task_fails(pve):
    migration = pve.nodes("pve2").qemu(101).migrate.post(target="pve3", online=1)
    eventually(lambda: next(r for r in pve.cluster.resources.get(type="vm") if r["vmid"] == 101).get("lock") == "migrate")
    upid = pve.nodes("pve2").vzdump.post(vmid="101", storage="nfs-store")
    assert wait_task(pve, upid)["exitstatus"] == "job errors"
    assert "ERROR: Backup of VM 101 failed - VM is locked (migrate)" in task_log(pve, upid)
    assert wait_task(pve, migration)["exitstatus"] == "OK"


def test_vzdump_waits_for_the_node_lock_and_reports_guest_errors(pve):
    first = pve.nodes("pve1").vzdump.post(vmid="9000", storage="nfs-store")
    second = pve.nodes("pve1").vzdump.post(vmid="9000,999", storage="nfs-store")
    assert wait_task(pve, first)["exitstatus"] == "OK"
    assert wait_task(pve, second)["exitstatus"] == "job errors"
    log = task_log(pve, second)
    assert log[0] == "INFO: trying to get global lock - waiting..."
    assert "ERROR: Backup of VM 999 failed - unable to find VM '999'" in log
    assert log[-1] == "TASK ERROR: job errors"
    assert len(_backups(pve, 9000)) == 2


def test_injected_failure_ends_the_job_with_errors(sim, pve):
    sim.admin("POST", "/faults/task-failure", type="vzdump", message="simulated I/O error")
    upid = pve.nodes("pve3").vzdump.post(vmid="104", storage="nfs-store")
    assert wait_task(pve, upid)["exitstatus"] == "job errors"
    assert "ERROR: Backup of VM 104 failed - simulated I/O error" in task_log(pve, upid)
    assert _backups(pve, 104, node="pve3") == []
    assert "lock" not in next(r for r in pve.cluster.resources.get(type="vm") if r["vmid"] == 104)


def test_prune_after_backup_and_prunebackups_endpoint(pve):
    for _ in range(3):
        upid = pve.nodes("pve1").vzdump.post(vmid="9000", storage="nfs-store", **{"prune-backups": "keep-last=2"})
        assert wait_task(pve, upid)["exitstatus"] == "OK"
    log = task_log(pve, upid)
    assert "INFO: prune older backups with retention: keep-last=2" in log
    assert any(line.startswith("INFO: removing backup 'nfs-store:backup/vzdump-qemu-9000-") for line in log)
    assert len(_backups(pve, 9000)) == 2
    marks = pve.nodes("pve1").storage("nfs-store").prunebackups.get(vmid=9000, **{"prune-backups": "keep-last=1"})
    assert sorted(m["mark"] for m in marks) == ["keep", "remove"]
    upid = pve.nodes("pve1").storage("nfs-store").prunebackups.delete(vmid=9000, **{"prune-backups": "keep-last=1"})
    assert upid.split(":")[5:7] == ["prunebackups", "9000@nfs-store"]
    assert wait_task(pve, upid)["exitstatus"] == "OK"
    assert len(_backups(pve, 9000)) == 1


def test_vzdump_defaults(pve):
    defaults = pve.nodes("pve1").vzdump.defaults.get()
    assert defaults["storage"] == "local" and defaults["mode"] == "snapshot"
    assert defaults["prune-backups"] == "keep-all=1"


def test_backup_job_crud_and_next_run(pve):
    err = _error(pve.cluster.backup.post, vmid="100", storage="nfs-store")
    assert err.errors == {"schedule": "neither 'starttime' nor 'schedule' were set"}
    pve.cluster.backup.post(id="nightly", schedule="mon..fri 02:30", vmid="100,101", storage="nfs-store",
                            compress="zstd", mode="snapshot")
    err = _error(pve.cluster.backup.post, id="nightly", schedule="daily", all=1)
    assert err.content == "Job 'nightly' already exists"
    [job] = [j for j in pve.cluster.backup.get() if j["id"] == "nightly"]
    assert job["schedule"] == "mon..fri 02:30" and job["enabled"] == 1
    run = time.localtime(job["next-run"])
    assert (run.tm_hour, run.tm_min) == (2, 30) and run.tm_wday < 5 and job["next-run"] > time.time()
    pve.cluster.backup("nightly").put(starttime="03:15", dow="sat")
    assert pve.cluster.backup("nightly").get()["schedule"] == "sat 03:15"
    pve.cluster.backup("nightly").put(all=1, exclude="102")
    job = pve.cluster.backup("nightly").get()
    assert job["all"] == 1 and "vmid" not in job
    err = _error(pve.cluster.backup.post, id="bad", schedule="every tuesday", all=1)
    assert err.errors == {"schedule": "invalid format - unable to parse calendar event 'every tuesday'"}
    pve.cluster.backup("nightly").delete()
    err = _error(pve.cluster.backup("nightly").get)
    assert err.errors == {"id": "No such job 'nightly'"}


def test_included_volumes_and_not_backed_up(pve):
    pve.cluster.backup.post(id="acme", schedule="21:00", pool="acme", storage="nfs-store")
    tree = pve.cluster.backup("acme").included_volumes.get()
    ids = [c["id"] for c in tree["children"]]
    assert ids == [100, 101, 102, 200]
    web = tree["children"][0]
    assert web["children"] == [{"id": "scsi0", "name": "ceph-rbd:vm-100-disk-0", "included": 1, "reason": "default include"}]
    missing = {g["vmid"] for g in pve.cluster("backup-info")("not-backed-up").get()}
    assert missing == {103, 104, 201, 9000}


def test_schedule_analyze(pve):
    start = int(time.mktime((2026, 4, 15, 10, 0, 0, 0, 0, -1)))  # a Wednesday, local time
    runs = pve.cluster.jobs("schedule-analyze").get(schedule="*/15", starttime=start, iterations=3)
    assert [r["timestamp"] - start for r in runs] == [900, 1800, 2700]
    runs = pve.cluster.jobs("schedule-analyze").get(schedule="sat 03:00", starttime=start, iterations=2)
    assert [time.localtime(r["timestamp"])[2:5] for r in runs] == [(18, 3, 0), (25, 3, 0)]
    err = _error(pve.cluster.jobs("schedule-analyze").get, schedule="25:00")
    assert err.errors == {"schedule": "invalid format - unable to parse calendar event '25:00'"}


def test_restore_round_trip_to_a_new_vmid(pve):
    upid = pve.nodes("pve1").vzdump.post(vmid="100", storage="nfs-store", compress="zstd")
    assert wait_task(pve, upid)["exitstatus"] == "OK"
    [backup] = _backups(pve, 100)
    upid = pve.nodes("pve2").qemu.post(vmid=150, archive=backup["volid"], storage="ceph-rbd", unique=1)
    assert upid.split(":")[5:7] == ["qmrestore", "150"]
    seen_lock = False
    while pve.nodes("pve2").tasks(upid).status.get()["status"] == "running":
        seen_lock = seen_lock or any(r["vmid"] == 150 and r.get("lock") == "create"
                                     for r in pve.cluster.resources.get(type="vm"))
        time.sleep(0.01)
    assert wait_task(pve, upid)["exitstatus"] == "OK"
    assert seen_lock
    log = task_log(pve, upid)
    assert "new volume ID is 'ceph-rbd:vm-150-disk-0'" in log
    assert any(line.startswith("progress 100% ") for line in log)
    config = pve.nodes("pve2").qemu(150).config.get()
    assert config["name"] == "web-01" and config["scsi0"].startswith("ceph-rbd:vm-150-disk-0,")
    assert "lock" not in config
    assert config["net0"] != "virtio=BC:24:11:0A:01:00,bridge=vmbr0,firewall=1"  # unique=1: new MAC
    assert "ceph-rbd:vm-150-disk-0" in {v["volid"] for v in pve.nodes("pve2").storage("ceph-rbd").content.get(vmid=150)}


def test_restore_errors_and_force(pve):
    upid = pve.nodes("pve3").vzdump.post(vmid="104", storage="nfs-store")
    assert wait_task(pve, upid)["exitstatus"] == "OK"
    [backup] = _backups(pve, 104, node="pve3")
    err = _error(pve.nodes("pve3").qemu.post, vmid=104, archive=backup["volid"])
    assert err.content == "unable to restore VM 104 - VM 104 already exists on node 'pve3'"
    err = _error(pve.nodes("pve3").qemu.post, vmid=105, archive="nfs-store:backup/vzdump-qemu-1-2026_01_01-00_00_00.vma")
    assert err.content.startswith("can't find file '/mnt/pve/nfs-store/dump/vzdump-qemu-1-")
    pve.nodes("pve3").qemu(104).config.put(name="renamed")
    upid = pve.nodes("pve3").qemu.post(vmid=104, archive=backup["volid"], force=1)
    assert wait_task(pve, upid)["exitstatus"] == "OK"
    assert pve.nodes("pve3").qemu(104).config.get()["name"] == "db-01"
    disks = [v["volid"] for v in pve.nodes("pve3").storage("ceph-rbd").content.get(vmid=104)]
    assert disks == ["ceph-rbd:vm-104-disk-0"]  # the old disk is gone, the restored one took its name


def test_lxc_restore(pve):
    upid = pve.nodes("pve1").vzdump.post(vmid="200", storage="nfs-store", compress="zstd")
    assert wait_task(pve, upid)["exitstatus"] == "OK"
    [backup] = _backups(pve, 200)
    upid = pve.nodes("pve3").lxc.post(vmid=250, ostemplate=backup["volid"], restore=1, storage="local-zfs")
    assert upid.split(":")[5] == "vzrestore"
    assert wait_task(pve, upid)["exitstatus"] == "OK"
    config = pve.nodes("pve3").lxc(250).config.get()
    assert config["hostname"] == "dns-01" and config["rootfs"].startswith("local-zfs:subvol-250-disk-0,")
