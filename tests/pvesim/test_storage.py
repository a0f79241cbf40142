"""pvesim storage: config, node status, content, allocation, upload/download, prune, ceph."""

import hashlib

import pytest
from proxmoxer.core import ResourceException

from .conftest import task_log, wait_task


def _error(call, *args, **kwargs) -> ResourceException:
    with pytest.raises(ResourceException) as exc:
        call(*args, **kwargs)
    return exc.value


def test_storage_config_crud(pve):
    ids = {s["storage"] for s in pve.storage.get()}
    assert ids == {"local", "local-zfs", "ceph-rbd", "nfs-store"}
    assert pve.storage("ceph-rbd").get()["shared"] == 1

    assert pve.storage.post(storage="scratch", type="dir", path="/srv/scratch") == {"storage": "scratch", "type": "dir"}
    created = pve.storage("scratch").get()
    assert created["content"] == "images,rootdir"  # dir's default content
    pve.storage("scratch").put(content="iso,backup", nodes="pve1,pve2")
    updated = pve.storage("scratch").get()
    assert (updated["content"], updated["nodes"]) == ("backup,iso", "pve1,pve2")
    pve.storage("scratch").delete()
    err = _error(pve.storage("scratch").get)
    assert (err.status_code, err.content) == (500, "storage 'scratch' does not exist")


def test_storage_create_errors(pve):
    err = _error(pve.storage.post, storage="local", type="dir", path="/x")
    assert err.content == "create storage failed: storage ID 'local' already defined"
    err = _error(pve.storage.post, storage="n2", type="nfs", server="10.0.0.9")
    assert err.content == "create storage failed: missing value for required option 'export'"
    err = _error(pve.storage.post, storage="r2", type="rbd", content="iso")
    assert err.errors == {"content": "unsupported content type 'iso'"}
    err = _error(pve.storage.post, storage="x1", type="nosuch")
    assert "enumeration" in err.errors["type"]


def test_node_storage_list_and_filters(pve):
    items = {s["storage"]: s for s in pve.nodes("pve1").storage.get()}
    rbd = items["ceph-rbd"]
    assert rbd["shared"] == 1 and rbd["active"] == 1 and rbd["enabled"] == 1
    assert rbd["used"] + rbd["avail"] == rbd["total"]
    assert rbd["used_fraction"] == pytest.approx(rbd["used"] / rbd["total"])
    backups = {s["storage"] for s in pve.nodes("pve1").storage.get(content="backup")}
    assert backups == {"local", "nfs-store"}
    shared_to_pve2 = {s["storage"] for s in pve.nodes("pve1").storage.get(target="pve2")}
    assert shared_to_pve2 == {"ceph-rbd", "nfs-store"}
    err = _error(pve.nodes("pve1").storage.get, storage="nope")
    assert err.errors == {"storage": "No such storage."}


def test_storage_status_disabled_and_node_restricted(pve):
    pve.storage("local-zfs").put(nodes="pve1,pve3")
    status = pve.nodes("pve1").storage("local-zfs").status.get()
    assert status["type"] == "zfspool" and status["total"] > 0
    err = _error(pve.nodes("pve2").storage("local-zfs").status.get)
    assert err.errors == {"storage": "No such storage."}
    err = _error(pve.nodes("pve2").storage("local-zfs").content.get)
    assert err.content == "storage 'local-zfs' is not available on node 'pve2'"
    pve.storage("local-zfs").put(disable=1)
    assert pve.nodes("pve1").storage("local-zfs").status.get()["enabled"] == 0
    assert "local-zfs" not in {s["storage"] for s in pve.nodes("pve1").storage.get(enabled=1)}
    err = _error(pve.nodes("pve1").storage("local-zfs").content.get)
    assert err.content == "storage 'local-zfs' is disabled"
    err = _error(pve.nodes("pve1").storage("nope").content.get)
    assert err.content == "storage 'nope' does not exist"


def test_content_list_filters(pve):
    content = pve.nodes("pve1").storage("nfs-store").content
    isos = content.get(content="iso")
    assert {i["volid"] for i in isos} == {"nfs-store:iso/debian-13.1.0-amd64-netinst.iso",
                                          "nfs-store:iso/ubuntu-24.04.3-live-server-amd64.iso"}
    backups = content.get(vmid=101)
    assert [b["subtype"] for b in backups] == ["qemu"]
    assert backups[0]["notes"] == "web-02 nightly"


def test_allocate_info_update_delete(pve):
    content = pve.nodes("pve1").storage("local-zfs").content
    volid = content.post(vmid=100, filename="vm-100-disk-7", size="4G")
    assert volid == "local-zfs:vm-100-disk-7"
    info = content(volid).get()
    assert info["size"] == 4 * 1024 ** 3 and info["path"] == "/dev/zvol/rpool/data/vm-100-disk-7"
    # local storage: the volume lives on pve1 only
    assert volid not in {v["volid"] for v in pve.nodes("pve3").storage("local-zfs").content.get()}
    err = _error(content.post, vmid=100, filename="vm-101-disk-0", size="1G")
    assert err.content == "illegal name 'vm-101-disk-0' - should be 'vm-100-*'"
    upid = content(volid).delete()
    assert upid.split(":")[5:7] == ["imgdel", "100@local-zfs"]
    assert wait_task(pve, upid)["exitstatus"] == "OK"
    assert f"Removed volume '{volid}'" in task_log(pve, upid)
    assert content.get(vmid=100) == []


def test_volume_name_without_storage_prefix(pve):
    volid = pve.nodes("pve1").storage("local").content.post(vmid=150, filename="vm-150-disk-0.qcow2", size="1G")
    assert volid == "local:150/vm-150-disk-0.qcow2"
    info = pve.nodes("pve1").storage("local").content("150/vm-150-disk-0.qcow2").get()
    assert info["format"] == "qcow2" and info["path"] == "/var/lib/vz/images/150/vm-150-disk-0.qcow2"
    err = _error(pve.nodes("pve1").storage("local").content("nfs-store:iso/x.iso").get)
    assert err.errors == {"volume": "storage ID mismatch (nfs-store != local)"}


def test_allocation_fails_when_storage_is_full(pve):
    pve.storage.post(storage="tiny-zfs", type="zfspool", pool="tank/tiny")
    content = pve.nodes("pve1").storage("tiny-zfs").content
    content.post(vmid=300, filename="vm-300-disk-0", size="1000G")
    err = _error(content.post, vmid=300, filename="vm-300-disk-1", size="1000G")
    assert err.content == "zfs error: cannot create 'tank/tiny/vm-300-disk-1': out of space"
    assert [v["volid"] for v in content.get()] == ["tiny-zfs:vm-300-disk-0"]


def test_backup_notes_and_protection(pve):
    content = pve.nodes("pve1").storage("nfs-store").content
    volid = "nfs-store:backup/vzdump-qemu-101-2026_11_20-02_00_04.vma.zst"
    content(volid).put(notes="keep me\nsecond line", protected=1)
    info = content(volid).get()
    assert info["notes"] == "keep me\nsecond line" and info["protected"] == 1
    assert content.get(vmid=101)[0]["notes"] == "keep me"  # list shows the first line only
    upid = content(volid).delete()
    status = wait_task(pve, upid)
    assert status["exitstatus"] == f"volume '{volid}' is protected"
    assert content.get(vmid=101)


def test_upload_with_checksum(pve):
    storage = pve.nodes("pve2").storage("local")
    good = hashlib.sha256(b"tools.iso").hexdigest()
    upid = storage.upload.post(content="iso", filename="tools.iso", checksum=good, **{"checksum-algorithm": "sha256"})
    assert upid.split(":")[5] == "imgcopy"
    assert wait_task(pve, upid)["exitstatus"] == "OK"
    assert "local:iso/tools.iso" in {v["volid"] for v in storage.content.get(content="iso")}
    upid = storage.upload.post(content="iso", filename="other.iso", checksum="00", **{"checksum-algorithm": "md5"})
    assert wait_task(pve, upid)["exitstatus"].startswith("checksum mismatch: got '")
    err = _error(storage.upload.post, content="iso", filename="notes.txt")
    assert err.errors == {"filename": "missing '.iso' or '.img' extension"}
    err = _error(pve.nodes("pve1").storage("ceph-rbd").upload.post, content="iso", filename="x.iso")
    assert err.content == "can't upload to storage type 'rbd'"


def test_download_url_logs_progress_and_checks_checksum(pve):
    url = "https://cdimage.example.org/debian-13.iso"
    storage = pve.nodes("pve1").storage("nfs-store")
    checksum = hashlib.sha512(url.encode()).hexdigest()
    upid = storage("download-url").post(content="iso", filename="debian-13.iso", url=url, checksum=checksum,
                                        **{"checksum-algorithm": "sha512"})
    assert upid.split(":")[5:7] == ["download", "nfs-store"]
    assert wait_task(pve, upid)["exitstatus"] == "OK"
    log = task_log(pve, upid)
    assert log[0] == f"downloading {url} to /mnt/pve/nfs-store/template/iso/debian-13.iso"
    assert any(" 50% " in line for line in log) and "checksum verified" in log
    assert "nfs-store:iso/debian-13.iso" in {v["volid"] for v in storage.content.get()}
    upid = storage("download-url").post(content="iso", filename="bad.iso", url=url, checksum="abc",
                                        **{"checksum-algorithm": "sha512"})
    assert wait_task(pve, upid)["exitstatus"] == f"checksum mismatch: got '{checksum}' != expect 'abc'"
    assert "nfs-store:iso/bad.iso" not in {v["volid"] for v in storage.content.get()}


def test_prune_backups_dry_run(pve):
    # pruning several backups of one guest is covered in test_backup (they come from vzdump)
    marks = pve.nodes("pve1").storage("nfs-store").prunebackups.get(**{"prune-backups": "keep-last=1"})
    assert marks == [{"volid": "nfs-store:backup/vzdump-qemu-101-2026_11_20-02_00_04.vma.zst", "ctime": marks[0]["ctime"],
                      "type": "qemu", "vmid": 101, "mark": "keep"}]
    err = _error(pve.nodes("pve1").storage("ceph-rbd").prunebackups.get)
    assert err.content == "storage 'ceph-rbd' does not support backups"


def test_storage_rrddata_and_ceph_status(sim, pve):
    points = pve.nodes("pve1").storage("ceph-rbd").rrddata.get(timeframe="hour")
    assert len(points) == 70 and {"time", "total", "used"} <= set(points[0])
    ceph = pve.cluster.ceph.status.get()
    assert ceph["health"]["status"] == "HEALTH_OK"
    assert ceph["osdmap"]["num_up_osds"] == ceph["osdmap"]["num_osds"]
    sim.admin("POST", "/nodes/pve3/power", state="off")
    ceph = pve.cluster.ceph.status.get()
    assert ceph["health"]["status"] == "HEALTH_WARN" and "OSD_HOST_DOWN" in ceph["health"]["checks"]
    assert ceph["quorum_names"] == ["pve1", "pve2"]
