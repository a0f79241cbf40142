"""Containers in pvesim, driven over HTTPS through proxmoxer: create, power, config, clone, template, snapshots."""

import re

import pytest

from .conftest import error, eventually, failed, ok, task_log

TEMPLATE = "nfs-store:vztmpl/debian-12-standard_12.7-1_amd64.tar.zst"


@pytest.fixture
def ct(pve):
    """CT 250 on pve1, 8 GiB rootfs on Ceph, created and stopped."""
    ok(pve, pve.nodes("pve1").lxc.post(vmid=250, ostemplate=TEMPLATE, hostname="ct-250", memory=1024,
                                       rootfs="ceph-rbd:8", net0="name=eth0,bridge=vmbr0,ip=dhcp"))
    return pve.nodes("pve1").lxc(250)


def test_create_extracts_template_and_allocates_rootfs(pve, slow):
    node = pve.nodes("pve1")
    upid = node.lxc.post(vmid=250, ostemplate=TEMPLATE, hostname="web-ct", cores=2, memory=1024, swap=256,
                         rootfs="local-zfs:8", mp0="ceph-rbd:4,mp=/data", net0="name=eth0,bridge=vmbr0,ip=dhcp",
                         features="nesting=1", password="secret123", pool="acme", tags="ct")
    assert upid.split(":")[5:7] == ["vzcreate", "250"]
    assert node.lxc(250).config.get()["lock"] == "create"
    ok(pve, upid)
    config = node.lxc(250).config.get()
    assert config["rootfs"] == "local-zfs:subvol-250-disk-0,size=8G"
    assert config["mp0"] == "ceph-rbd:vm-250-disk-0,mp=/data,size=4G"
    assert config["unprivileged"] == 1 and config["ostype"] == "debian" and config["arch"] == "amd64"
    assert re.fullmatch(r"name=eth0,bridge=vmbr0,hwaddr=BC:24:11:[0-9A-F:]{8},ip=dhcp", config["net0"])
    assert "password" not in config and "lock" not in config
    log = task_log(pve, upid)
    assert any(line.startswith("extracting archive '") for line in log)
    assert "Detected container architecture: amd64" in log
    vols = {v["volid"] for v in node.storage("local-zfs").content.get(vmid=250)}
    assert vols == {"local-zfs:subvol-250-disk-0"}
    resources = {r["vmid"]: r for r in pve.cluster.resources.get(type="vm")}
    assert resources[250]["pool"] == "acme" and resources[250]["type"] == "lxc"


def test_create_errors(pve):
    node = pve.nodes("pve1")
    err = error(lambda: node.lxc.post(vmid=250, ostemplate="nfs-store:vztmpl/missing.tar.zst", rootfs="ceph-rbd:8"))
    assert err.content == "volume 'nfs-store:vztmpl/missing.tar.zst' does not exist"
    err = error(lambda: node.lxc.post(vmid=250, ostemplate=TEMPLATE), 400)  # rootfs defaults to local:4
    assert err.errors == {"storage": "storage 'local' does not support container directories"}
    err = error(lambda: node.lxc.post(vmid=100, ostemplate=TEMPLATE, rootfs="ceph-rbd:8"))
    assert err.content == "unable to create CT 100 - VM 100 already exists on node 'pve1'"
    err = error(lambda: node.lxc.post(vmid=250, ostemplate=TEMPLATE, net0="bridge=vmbr0"), 400)
    assert "net0.name: property is missing and it is not optional" in err.errors["net0"]
    err = error(lambda: node.lxc.post(vmid=250, ostemplate=TEMPLATE, password="abc"), 400)
    assert err.errors == {"password": "value must have at least 5 characters"}
    err = error(lambda: node.lxc.post(vmid=250, ostemplate=TEMPLATE, rootfs="ceph-rbd:8", archive="x"), 400)
    assert "archive" in err.errors


def test_start_status_stop_and_sync_errors(pve, ct):
    ok(pve, ct.status.start.post())
    status = ct.status.current.get()
    assert status["status"] == "running" and status["type"] == "lxc"
    assert status["maxswap"] == 512 * 1024 ** 2 and status["maxmem"] == 1024 * 1024 ** 2
    assert error(lambda: ct.status.start.post()).content == "CT 250 already running"
    upid = ct.status.shutdown.post(timeout=30)
    assert upid.split(":")[5] == "vzshutdown"
    ok(pve, upid)
    assert ct.status.current.get()["status"] == "stopped"
    assert error(lambda: ct.status.stop.post()).content == "CT 250 not running"
    assert error(lambda: ct.status.reboot.post()).content == "CT 250 not running"


def test_injected_start_failure(sim, pve, ct):
    sim.admin("POST", "/faults/task-failure", type="vzstart", message="startup for container '250' failed")
    failed(pve, ct.status.start.post(), "startup for container '250' failed")
    assert ct.status.current.get()["status"] == "stopped"


def test_config_put_digest_and_delete(pve, ct):
    digest = ct.config.get()["digest"]
    ct.config.put(memory=2048, description="db", digest=digest)
    assert ct.config.get()["memory"] == 2048
    err = error(lambda: ct.config.put(cores=2, digest=digest))
    assert err.content == "detected modified configuration - file changed by other user? Try again."
    ct.config.put(delete="description")
    assert "description" not in ct.config.get()
    err = error(lambda: ct.config.put(delete="rootfs"), 400)
    assert err.errors == {"delete": "unable to delete required option 'rootfs'"}


def test_template_is_sync_and_linked_clone(pve, ct):
    assert ct.template.post() is None
    config = ct.config.get()
    assert config["template"] == 1 and config["rootfs"].startswith("ceph-rbd:base-250-disk-0,")
    assert error(lambda: ct.template.post()).content == "you can't convert a template to a template"
    failed(pve, ct.status.start.post(), "you can't start a CT if it's a template")
    upid = ct.clone.post(newid=251, hostname="linked")
    assert upid.split(":")[5:7] == ["vzclone", "250"]
    ok(pve, upid)
    clone = pve.nodes("pve1").lxc(251).config.get()
    assert clone["rootfs"] == "ceph-rbd:base-250-disk-0/vm-251-disk-0,size=8G"
    assert clone["hostname"] == "linked" and clone["net0"] != config["net0"]


def test_full_clone_and_running_template_error(pve, ct, slow):
    upid = ct.clone.post(newid=251, full=1, storage="local-zfs")
    assert pve.nodes("pve1").lxc(251).config.get()["lock"] == "create"
    assert ct.config.get()["lock"] == "disk"
    assert error(lambda: ct.config.put(cores=2)).content == "CT is locked (disk)"
    ok(pve, upid)
    assert "transferred 8.0 GiB of 8.0 GiB (100.00%)" in task_log(pve, upid)
    assert "lock" not in ct.config.get()
    assert pve.nodes("pve1").lxc(251).config.get()["rootfs"] == "local-zfs:subvol-251-disk-0,size=8G"
    err = error(lambda: pve.nodes("pve1").lxc(200).template.post())
    assert err.content == "you can't convert a CT to template if the CT is running"


def test_snapshots_and_locks(pve, ct, slow):
    upid = ct.snapshot.post(snapname="pre", description="before upgrade")
    eventually(lambda: ct.config.get().get("lock") == "snapshot")
    assert error(lambda: ct.config.put(memory=4096)).content == "CT is locked (snapshot)"
    ok(pve, upid)
    assert upid.split(":")[5] == "vzsnapshot"
    ct.config.put(memory=4096)
    snaps = ct.snapshot.get()
    assert [s["name"] for s in snaps] == ["pre", "current"] and "vmstate" not in snaps[0]
    ok(pve, ct.snapshot("pre").rollback.post(start=1))
    assert ct.config.get()["memory"] == 1024
    assert ct.status.current.get()["status"] == "running"
    ok(pve, ct.snapshot("pre").delete())
    assert [s["name"] for s in ct.snapshot.get()] == ["current"]


def test_resize_and_move_volume(pve, ct):
    ok(pve, ct.resize.put(disk="rootfs", size="+2G"))
    assert ct.config.get()["rootfs"].endswith("size=10G")
    failed(pve, ct.resize.put(disk="rootfs", size="4G"), "shrinking disks is not supported")
    upid = ct.move_volume.post(volume="rootfs", storage="local-zfs", delete=1)
    assert upid.split(":")[5] == "move_volume"
    ok(pve, upid)
    config = ct.config.get()
    assert config["rootfs"].startswith("local-zfs:subvol-250-disk-0,") and "unused0" not in config


def test_destroy(pve, ct):
    running = pve.nodes("pve3").lxc(201)
    assert error(lambda: running.delete()).content == "unable to destroy CT 201 - container is running"
    ok(pve, ct.delete(purge=1))
    assert 250 not in {g["vmid"] for g in pve.nodes("pve1").lxc.get()}
    assert pve.nodes("pve1").storage("ceph-rbd").content.get(vmid=250) == []
    ok(pve, running.delete(force=1))
    assert 201 not in {g["vmid"] for g in pve.nodes("pve3").lxc.get()}


def test_ha_managed_ct_needs_purge(pve):
    ct = pve.nodes("pve1").lxc(200)
    if ct.status.current.get()["ha"]["managed"] != 1:
        pytest.skip("HA manager not available in this build")
    err = error(lambda: ct.delete())  # the HA check comes before the running check
    assert err.content == "unable to remove CT 200 - used in HA resources and purge parameter not set."


def test_interfaces_and_rrddata(pve):
    ifaces = pve.nodes("pve1").lxc(200).interfaces.get()
    assert ifaces[1]["name"] == "eth0" and ifaces[1]["hwaddr"] == "bc:24:11:0b:02:00"
    assert ifaces[0]["ip-addresses"] == [{"ip-address": "127.0.0.1", "ip-address-type": "inet", "prefix": 8},
                                         {"ip-address": "::1", "ip-address-type": "inet6", "prefix": 128}]
    assert ifaces[1]["ip-addresses"][0]["ip-address"] == ifaces[1]["inet"].split("/")[0]
    assert len(pve.nodes("pve1").lxc(200).rrddata.get(timeframe="day")) == 70
