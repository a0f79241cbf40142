"""QEMU VMs in pvesim, driven over HTTPS through proxmoxer: create, power, config, clone, snapshots, destroy."""

import re

import pytest

from .conftest import error, eventually, failed, ok, task_log, wait_task


def volumes(pve, node, storage, vmid):
    return {v["volid"]: v for v in pve.nodes(node).storage(storage).content.get(vmid=vmid)}


@pytest.fixture
def vm(pve):
    """VM 150 on pve1 with one 16 GiB Ceph disk, created and stopped."""
    upid = pve.nodes("pve1").qemu.post(vmid=150, name="test-150", memory="2048", cores=2,
                                       scsi0="ceph-rbd:16,iothread=1", net0="virtio,bridge=vmbr0")
    ok(pve, upid)
    return pve.nodes("pve1").qemu(150)


# ---- create ----------------------------------------------------------------------------------

def test_create_allocates_real_volumes_and_generates_a_mac(pve, slow):
    node = pve.nodes("pve1")
    upid = node.qemu.post(vmid=150, name="app-01", memory="4096", cores=2, sockets=1, cpu="x86-64-v2-AES",
                          scsihw="virtio-scsi-single", scsi0="ceph-rbd:32,iothread=1,discard=on",
                          efidisk0="ceph-rbd:1,efitype=4m,pre-enrolled-keys=1", bios="ovmf",
                          ide2="nfs-store:iso/debian-13.1.0-amd64-netinst.iso,media=cdrom",
                          net0="virtio,bridge=vmbr0,firewall=1", tags="app;test", onboot=1)
    assert upid.split(":")[5:7] == ["qmcreate", "150"]
    assert node.qemu(150).config.get()["lock"] == "create"  # held while the task runs
    ok(pve, upid)
    config = node.qemu(150).config.get()
    assert "lock" not in config
    assert config["scsi0"] == "ceph-rbd:vm-150-disk-0,iothread=1,discard=on,size=32G"
    assert config["efidisk0"].startswith("ceph-rbd:vm-150-disk-1,efitype=4m,pre-enrolled-keys=1,size=")
    assert re.fullmatch(r"virtio=BC:24:11:[0-9A-F]{2}:[0-9A-F]{2}:[0-9A-F]{2},bridge=vmbr0,firewall=1", config["net0"])
    assert config["boot"] == "order=scsi0;ide2;net0"
    assert len(config["digest"]) == 40
    vols = volumes(pve, "pve1", "ceph-rbd", 150)
    assert vols["ceph-rbd:vm-150-disk-0"]["size"] == 32 * 1024 ** 3
    assert "ceph-rbd:vm-150-disk-1" in vols
    assert "scsi0: successfully created disk 'ceph-rbd:vm-150-disk-0,iothread=1,discard=on,size=32G'" in task_log(pve, upid)
    listed = {g["vmid"]: g for g in node.qemu.get()}
    assert listed[150]["status"] == "stopped" and listed[150]["name"] == "app-01"


def test_create_on_local_storage_uses_the_node(pve):
    ok(pve, pve.nodes("pve2").qemu.post(vmid=151, scsi0="local-zfs:8"))
    assert pve.nodes("pve2").qemu(151).config.get()["scsi0"] == "local-zfs:vm-151-disk-0,size=8G"
    assert "local-zfs:vm-151-disk-0" in volumes(pve, "pve2", "local-zfs", 151)


def test_duplicate_vmid_is_refused_synchronously(pve):
    err = error(lambda: pve.nodes("pve3").qemu.post(vmid=100))
    assert err.content == "unable to create VM 100 - VM 100 already exists on node 'pve1'"
    err = error(lambda: pve.nodes("pve1").qemu.post(vmid=200))
    assert err.content == "unable to create VM 200 - CT 200 already exists on node 'pve1'"


def test_create_checks_storages_and_isos(pve):
    node = pve.nodes("pve1")
    err = error(lambda: node.qemu.post(vmid=150, scsi0="nope:8"))
    assert err.content == "storage 'nope' does not exist"
    err = error(lambda: node.qemu.post(vmid=150, scsi0="local:8"), 400)
    assert err.errors == {"storage": "storage 'local' does not support vm images"}
    err = error(lambda: node.qemu.post(vmid=150, ide2="nfs-store:iso/missing.iso,media=cdrom"))
    assert err.content == "volume 'nfs-store:iso/missing.iso' does not exist"
    err = error(lambda: node.qemu.post(vmid=150, net0="bridge=vmbr0"), 400)
    assert "net0.model: property is missing and it is not optional" in err.errors["net0"]
    err = error(lambda: node.qemu.post(vmid=150, pool="nope"))
    assert err.content == "pool 'nope' does not exist"
    assert 150 not in {g["vmid"] for g in node.qemu.get()}


def test_full_storage_fails_the_task_and_removes_the_vm(pve):
    upid = pve.nodes("pve1").qemu.post(vmid=150, scsi0="local-zfs:5000")
    status = wait_task(pve, upid)
    assert status["exitstatus"].startswith("unable to create image: not enough free space on storage 'local-zfs'")
    assert 150 not in {g["vmid"] for g in pve.nodes("pve1").qemu.get()}


def test_create_with_pool_cloudinit_and_start(pve):
    node = pve.nodes("pve1")
    keys = "ssh-ed25519%20AAAAC3NzaC1lZDI1NTE5AAAAITest%20me%40laptop%0A"
    upid = node.qemu.post(vmid=150, pool="acme", start=1, scsi0="ceph-rbd:8", ide2="ceph-rbd:cloudinit",
                          ciuser="admin", cipassword="s3cret", sshkeys=keys, ipconfig0="ip=10.20.0.50/24,gw=10.20.0.1",
                          nameserver="10.20.0.1", searchdomain="example.com", net0="virtio,bridge=vmbr0")
    ok(pve, upid)
    config = node.qemu(150).config.get()
    assert config["ide2"] == "ceph-rbd:vm-150-cloudinit,media=cdrom"
    assert config["sshkeys"] == keys
    assert config["cipassword"] == "**********"
    assert config["ipconfig0"] == "ip=10.20.0.50/24,gw=10.20.0.1"
    resources = {r["vmid"]: r for r in pve.cluster.resources.get(type="vm")}
    assert resources[150]["pool"] == "acme"
    eventually(lambda: node.qemu(150).status.current.get()["status"] == "running")
    starts = [t for t in node.tasks.get(vmid=150, source="all") if t["type"] == "qmstart"]
    assert starts


def test_hostpci_needs_exactly_one_of_host_and_mapping_and_root_for_host(pve):
    node = pve.nodes("pve1")
    err = error(lambda: node.qemu.post(vmid=150, hostpci0="0000:41:00.0,mapping=gpu-l40s"), 400)
    assert err.errors == {"hostpci0": "invalid format - Cannot set both 'host' and 'mapping'."}
    err = error(lambda: node.qemu.post(vmid=150, hostpci0="pcie=1"), 400)
    assert err.errors == {"hostpci0": "invalid format - Either 'host' or 'mapping' must be set."}
    err = error(lambda: node.qemu.post(vmid=150, hostpci0="0000:41:00.0,pcie=1"))  # a token is not root@pam
    assert err.content == "only root can set 'hostpci0' config for non-mapped devices"
    ok(pve, node.qemu.post(vmid=150, machine="q35", hostpci0="mapping=gpu-l40s,pcie=1,x-vga=1"))
    assert node.qemu(150).config.get()["hostpci0"] == "mapping=gpu-l40s,pcie=1,x-vga=1"


# ---- status and power ------------------------------------------------------------------------------

def test_start_status_and_stop(pve, vm):
    assert vm.status.current.get()["status"] == "stopped"
    upid = vm.status.start.post()
    assert upid.split(":")[5] == "qmstart"
    ok(pve, upid)
    status = vm.status.current.get()
    assert status["status"] == "running" and status["qmpstatus"] == "running"
    assert status["ha"] == {"managed": 0}
    assert status["maxmem"] == 2048 * 1024 ** 2 and status["cpus"] == 2 and status["pid"] > 0
    failed(pve, vm.status.start.post(), "VM 150 already running")
    ok(pve, vm.status.stop.post())
    assert vm.status.current.get()["status"] == "stopped"


def test_power_errors_on_stopped_vm(pve, vm):
    for action in ("reset", "reboot", "suspend", "resume"):
        err = error(lambda: getattr(vm.status, action).post())
        assert err.content == "VM 150 not running"


def test_template_cannot_start(pve):
    failed(pve, pve.nodes("pve1").qemu(9000).status.start.post(), "you can't start a vm if it's a template")


def test_paused_vm_cannot_shutdown(pve):
    vm = pve.nodes("pve1").qemu(102)
    ok(pve, vm.status.suspend.post())
    status = vm.status.current.get()
    assert (status["status"], status["qmpstatus"]) == ("running", "paused")
    assert error(lambda: vm.status.shutdown.post()).content == "VM is paused - cannot shutdown"
    ok(pve, vm.status.resume.post())
    ok(pve, vm.status.shutdown.post())
    assert vm.status.current.get()["status"] == "stopped"


def test_shutdown_timeout_and_force_stop(pve, vm):
    vm.config.put(acpi=0)  # the guest ignores ACPI power button
    ok(pve, vm.status.start.post())
    failed(pve, vm.status.shutdown.post(timeout=2), "VM quit/powerdown failed - got timeout")
    assert vm.status.current.get()["status"] == "running"
    upid = vm.status.shutdown.post(timeout=2, forceStop=1)
    ok(pve, upid)
    assert "VM still running - terminating now with SIGTERM" in task_log(pve, upid)
    assert vm.status.current.get()["status"] == "stopped"


def test_injected_start_failure_ends_in_task_error(sim, pve, vm):
    sim.admin("POST", "/faults/task-failure", type="qmstart", message="start failed: QEMU exited with code 1")
    failed(pve, vm.status.start.post(), "start failed: QEMU exited with code 1")
    assert vm.status.current.get()["status"] == "stopped"


def test_ha_managed_vm_start_forks_hastart(pve):
    vm = pve.nodes("pve1").qemu(100)
    status = vm.status.current.get()
    if status["ha"]["managed"] != 1:
        pytest.skip("HA manager not available in this build")
    upid = vm.status.stop.post()
    assert upid.split(":")[5] == "hastop"
    ok(pve, upid)
    assert "Requesting HA stop for VM 100" in task_log(pve, upid)


# ---- config --------------------------------------------------------------------------------------

def test_config_put_delete_and_digest_conflict(pve, vm):
    config = vm.config.get()
    vm.config.put(memory="4096", description="hello", digest=config["digest"])
    changed = vm.config.get()
    assert changed["memory"] == "4096" and changed["description"] == "hello"
    err = error(lambda: vm.config.put(cores=4, digest=config["digest"]))
    assert err.content == "detected modified configuration - file changed by other user? Try again."
    vm.config.put(delete="description")
    assert "description" not in vm.config.get()
    err = error(lambda: vm.config.put(cores=4, delete="cores"), 400)
    assert err.errors == {"delete": "you can't use '-cores' and -delete cores' at the same time"}
    err = error(lambda: vm.config.put(cores=0), 400)
    assert err.errors == {"cores": "value must have a minimum value of 1"}


def test_config_adds_and_detaches_disks(pve, vm):
    vm.config.put(scsi1="ceph-rbd:4")
    assert vm.config.get()["scsi1"] == "ceph-rbd:vm-150-disk-1,size=4G"
    vm.config.put(delete="scsi1")
    config = vm.config.get()
    assert config["unused0"] == "ceph-rbd:vm-150-disk-1" and "scsi1" not in config
    vm.config.put(delete="unused0")
    assert "ceph-rbd:vm-150-disk-1" not in volumes(pve, "pve1", "ceph-rbd", 150)


def test_async_config_post(pve, vm):
    upid = vm.config.post(name="renamed")
    assert upid.split(":")[5] == "qmconfig"
    ok(pve, upid)
    assert vm.config.get()["name"] == "renamed"
    assert vm.config.post(cores=3, background_delay=5) is None


def test_only_root_sets_a_lock(pve, vm):
    assert error(lambda: vm.config.put(lock="backup")).content == "only root can change lock"


def test_resize_grows_and_refuses_to_shrink(pve, vm):
    ok(pve, vm.resize.put(disk="scsi0", size="+4G"))
    assert vm.config.get()["scsi0"].endswith("size=20G")
    assert volumes(pve, "pve1", "ceph-rbd", 150)["ceph-rbd:vm-150-disk-0"]["size"] == 20 * 1024 ** 3
    failed(pve, vm.resize.put(disk="scsi0", size="10G"), "shrinking disks is not supported")
    failed(pve, vm.resize.put(disk="scsi5", size="+1G"), "disk 'scsi5' does not exist")


def test_move_disk_logs_progress_and_keeps_the_source_as_unused(pve, vm):
    upid = vm.move_disk.post(disk="scsi0", storage="local-zfs")
    ok(pve, upid)
    log = task_log(pve, upid)
    assert log[0] == "create full clone of drive scsi0 (ceph-rbd:vm-150-disk-0)"
    assert "transferred 16.0 GiB of 16.0 GiB (100.00%)" in log
    config = vm.config.get()
    assert config["scsi0"].startswith("local-zfs:vm-150-disk-0,")
    assert config["unused0"] == "ceph-rbd:vm-150-disk-0"
    err = error(lambda: vm.move_disk.post(disk="scsi0", storage="local-zfs"))
    assert err.content == "you can't move to the same storage with same format"


# ---- clone and template ------------------------------------------------------------------------------

def test_linked_clone_of_template(pve):
    node = pve.nodes("pve1")
    upid = node.qemu(9000).clone.post(newid=300, name="from-template")
    assert upid.split(":")[5:7] == ["qmclone", "9000"]
    ok(pve, upid)
    assert task_log(pve, upid)[:2] == ["create full clone of drive ide2 (ceph-rbd:vm-9000-cloudinit)",
                                       "create linked clone of drive scsi0 (ceph-rbd:base-9000-disk-0)"]
    config = node.qemu(300).config.get()
    assert config["scsi0"] == "ceph-rbd:base-9000-disk-0/vm-300-disk-0,size=8G"
    assert config["ide2"] == "ceph-rbd:vm-300-cloudinit,media=cdrom"
    assert config["name"] == "from-template" and "template" not in config
    assert config["net0"] != node.qemu(9000).config.get()["net0"]  # MAC regenerated
    err = error(lambda: node.qemu(9000).clone.post(newid=301, full=0, storage="ceph-rbd"))
    assert err.content == "parameter 'storage' not allowed for linked clones"


def test_full_clone_logs_progress_and_holds_clone_lock(pve, vm, slow):
    upid = vm.clone.post(newid=151, full=1, pool="globex")
    assert pve.nodes("pve1").qemu(151).config.get()["lock"] == "clone"
    ok(pve, upid)
    log = task_log(pve, upid)
    assert log[0] == "create full clone of drive scsi0 (ceph-rbd:vm-150-disk-0)"
    assert "transferred 0.0 B of 16.0 GiB (0.00%)" in log and "transferred 16.0 GiB of 16.0 GiB (100.00%)" in log
    config = pve.nodes("pve1").qemu(151).config.get()
    assert config["scsi0"] == "ceph-rbd:vm-151-disk-0,iothread=1,size=16G" and "lock" not in config
    assert config["name"] == "Copy-of-VM-test-150"


def test_clone_of_running_vm_mirrors_the_drives(pve):
    upid = pve.nodes("pve1").qemu(100).clone.post(newid=151, name="web-copy")
    ok(pve, upid)
    log = task_log(pve, upid)
    assert log[:2] == ["create full clone of drive scsi0 (ceph-rbd:vm-100-disk-0)", "drive mirror is starting for drive-scsi0"]
    assert any(line.startswith("drive-scsi0: transferred 32.0 GiB of 32.0 GiB (100.00%) in ") for line in log)
    assert "all 'mirror' jobs are ready" in log


def test_clone_errors(pve, vm):
    err = error(lambda: vm.clone.post(newid=151, full=0))
    assert err.content == "Linked clone feature is not supported for 'ceph-rbd:vm-150-disk-0' (scsi0)"
    err = error(lambda: vm.clone.post(newid=100))
    assert err.content == "unable to create VM 100: config file already exists"
    ok(pve, pve.nodes("pve2").qemu.post(vmid=152, scsi0="local-zfs:4"))
    err = error(lambda: pve.nodes("pve2").qemu(152).clone.post(newid=153, target="pve3"))
    assert err.content == "can't clone VM to node 'pve3' (VM uses local storage)"


def test_template_conversion(pve, vm):
    upid = vm.template.post()
    assert upid.split(":")[5] == "qmtemplate"
    ok(pve, upid)
    config = vm.config.get()
    assert config["template"] == 1 and config["scsi0"].startswith("ceph-rbd:base-150-disk-0,")
    err = error(lambda: vm.template.post())
    assert err.content == "you can't convert a template to a template"
    err = error(lambda: pve.nodes("pve1").qemu(100).template.post())
    assert err.content == "you can't convert a VM to template if VM is running"


# ---- snapshots ------------------------------------------------------------------------------------

def test_snapshot_create_list_rollback_delete(pve, vm, slow):
    upid = vm.snapshot.post(snapname="before", description="clean")
    eventually(lambda: vm.config.get().get("lock") == "snapshot")
    ok(pve, upid)
    vm.config.put(memory="8192")
    snaps = vm.snapshot.get()
    assert [s["name"] for s in snaps] == ["before", "current"]
    assert snaps[-1]["description"] == "You are here!" and snaps[-1]["parent"] == "before"
    assert vm.config.get(snapshot="before")["memory"] == "2048"
    ok(pve, vm.snapshot("before").rollback.post())
    assert vm.config.get()["memory"] == "2048"
    failed(pve, vm.snapshot.post(snapname="before"), "snapshot name 'before' already used")
    ok(pve, vm.snapshot("before").delete())
    assert [s["name"] for s in vm.snapshot.get()] == ["current"]
    failed(pve, vm.snapshot("before").delete(), "snapshot 'before' does not exist")
    err = error(lambda: vm.snapshot.post(snapname="current"))
    assert err.content == "unable to use snapshot name 'current' (reserved name)"
    err = error(lambda: vm.snapshot.post(snapname="1bad"), 400)
    assert "snapname" in err.errors


def test_snapshot_with_vmstate_of_running_vm(pve, vm):
    ok(pve, vm.status.start.post())
    upid = vm.snapshot.post(snapname="live", vmstate=1)
    ok(pve, upid)
    assert "saving VM state and RAM using storage 'ceph-rbd'" in task_log(pve, upid)
    assert vm.snapshot.get()[0]["vmstate"] == 1
    ok(pve, vm.status.stop.post())
    ok(pve, vm.snapshot("live").rollback.post())
    assert vm.status.current.get()["status"] == "running"  # RAM state restored


def test_lock_conflicts(pve, vm, slow):
    upid = vm.snapshot.post(snapname="s1")
    eventually(lambda: vm.config.get().get("lock") == "snapshot")
    err = error(lambda: vm.config.put(cores=4))
    assert err.content == "VM is locked (snapshot)"
    failed(pve, vm.status.start.post(), "VM is locked (snapshot)")
    ok(pve, upid)
    ok(pve, vm.status.start.post())


# ---- destroy -------------------------------------------------------------------------------------

def test_destroy_errors_and_purge(pve, vm):
    err = error(lambda: pve.nodes("pve1").qemu(102).delete())
    assert err.content == "VM 102 is running - destroy failed"
    vm.config.put(protection=1)
    err = error(lambda: vm.delete())
    assert err.content == "can't remove VM 150 - protection mode enabled"
    vm.config.put(delete="protection")
    upid = vm.delete(purge=1)
    assert upid.split(":")[5] == "qmdestroy"
    ok(pve, upid)
    assert 150 not in {g["vmid"] for g in pve.nodes("pve1").qemu.get()}
    assert volumes(pve, "pve1", "ceph-rbd", 150) == {}
    err = error(lambda: vm.config.get())
    assert err.content == "Configuration file 'nodes/pve1/qemu-server/150.conf' does not exist"


def test_destroy_template_with_linked_clone_fails(pve):
    ok(pve, pve.nodes("pve1").qemu(9000).clone.post(newid=300))
    status = wait_task(pve, pve.nodes("pve1").qemu(9000).delete())
    assert status["exitstatus"].startswith("base volume 'ceph-rbd:base-9000-disk-0' is still in use")


def test_destroy_removes_pool_membership_and_ha_with_purge(pve):
    vm = pve.nodes("pve3").qemu(104)
    ok(pve, vm.delete(purge=1))
    resources = {r["id"] for r in pve.cluster.resources.get(type="vm")}
    assert "qemu/104" not in resources


def test_rrddata_and_agent(pve, vm):
    points = vm.rrddata.get(timeframe="hour")
    assert len(points) == 70 and {"cpu", "mem", "maxmem", "netin"} <= set(points[0])
    err = error(lambda: vm.agent("network-get-interfaces").get())
    assert err.content == "No QEMU guest agent configured"


def test_purge_removes_backup_job_entries_and_ha_resource(pve, vm):
    pve.cluster.backup.post(id="nightly-150", vmid="150", schedule="02:00", storage="nfs-store")
    pve.cluster.backup.post(id="nightly-mixed", vmid="150,104", schedule="03:00", storage="nfs-store")
    pve.cluster.ha.resources.post(sid="vm:150", state="stopped")
    err = error(lambda: vm.delete())
    assert err.content == "unable to remove VM 150 - used in HA resources and purge parameter not set."
    upid = vm.delete(purge=1)
    ok(pve, upid)
    assert "NOTE: removed VM 150 from HA resource configuration." in task_log(pve, upid)
    jobs = {j["id"]: j for j in pve.cluster.backup.get()}
    assert "nightly-150" not in jobs and jobs["nightly-mixed"]["vmid"] == "104"
    assert "vm:150" not in {r["sid"] for r in pve.cluster.ha.resources.get()}


def test_start_refused_by_a_start_hook_is_a_task_error(pve):
    """Both L40S cards of the gpu-l40s mapping are taken: VM 102 holds one, a new VM the other."""
    node = pve.nodes("pve1")
    for vmid in (150, 151):
        ok(pve, node.qemu.post(vmid=vmid, machine="q35", hostpci0="mapping=gpu-l40s,pcie=1"))
    ok(pve, node.qemu(150).status.start.post())
    status = wait_task(pve, node.qemu(151).status.start.post())
    assert status["exitstatus"] != "OK"
    assert node.qemu(151).status.current.get()["status"] == "stopped"


def test_cdrom_shortcut_and_insert_iso(pve, vm):
    vm.config.put(cdrom="nfs-store:iso/ubuntu-24.04.3-live-server-amd64.iso")
    assert vm.config.get()["ide2"] == "nfs-store:iso/ubuntu-24.04.3-live-server-amd64.iso,media=cdrom"
    vm.config.put(ide2="none,media=cdrom")
    config = vm.config.get()
    assert config["ide2"] == "none,media=cdrom" and "unused0" not in config


def test_archive_delegates_to_restore(pve):
    node = pve.nodes("pve1")
    err = error(lambda: node.qemu.post(vmid=160, archive="nfs-store:backup/vzdump-qemu-101-2026_11_20-02_00_04.vma.zst",
                                       scsi0="ceph-rbd:8"), 400)
    assert err.errors == {"scsi0": "option conflicts with option 'archive'"}
    upid = node.qemu.post(vmid=160, archive="nfs-store:backup/vzdump-qemu-101-2026_11_20-02_00_04.vma.zst",
                          storage="ceph-rbd", unique=1)
    assert upid.split(":")[5:7] == ["qmrestore", "160"]
    ok(pve, upid)
    assert node.qemu(160).config.get()["scsi0"].startswith("ceph-rbd:vm-160-disk-0")
