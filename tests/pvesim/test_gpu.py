"""GPUs: PCI discovery, mdev types, cluster mappings, and exclusive use at VM start."""

import pytest
from proxmoxer.core import ResourceException

from .conftest import wait_task


def create_vm(pve, node, vmid, hostpci0):
    upid = pve.nodes(node).qemu.post(vmid=vmid, name=f"gpu-{vmid}", machine="q35", memory=2048, hostpci0=hostpci0)
    assert wait_task(pve, upid)["exitstatus"] == "OK"


def start(pve, node, vmid):
    return wait_task(pve, pve.nodes(node).qemu(vmid).status.start.post())


def stop(pve, node, vmid):
    return wait_task(pve, pve.nodes(node).qemu(vmid).status.stop.post())


def available(pve, node, ref):
    return {t["type"]: t["available"] for t in pve.nodes(node).hardware.pci(ref).mdev.get()}


def test_pci_list_shapes_and_class_blacklist(pve):
    devices = {d["id"]: d for d in pve.nodes("pve1").hardware.pci.get()}
    assert devices["0000:41:00.0"] == {
        "id": "0000:41:00.0", "class": "0x030000", "vendor": "0x10de", "device": "0x26b9",
        "vendor_name": "NVIDIA Corporation", "device_name": "AD102GL [L40S]", "subsystem_vendor": "0x10de",
        "subsystem_device": "0x1851", "subsystem_vendor_name": "NVIDIA Corporation", "subsystem_device_name": "L40S",
        "iommugroup": 40}  # full passthrough only: no `mdev` key
    assert devices["0000:02:00.0"]["class"] == "0x020000"
    assert "0000:00:00.0" not in devices  # host bridge, class 06: blacklisted by default
    everything = {d["id"]: d for d in pve.nodes("pve1").hardware.pci.get(**{"pci-class-blacklist": ""})}
    assert everything["0000:00:00.0"]["class"] == "0x060000"
    terse = {d["id"]: d for d in pve.nodes("pve1").hardware.pci.get(verbose=0)}
    assert "vendor_name" not in terse["0000:41:00.0"] and terse["0000:41:00.0"]["vendor"] == "0x10de"
    a16 = next(d for d in pve.nodes("pve2").hardware.pci.get() if d["id"] == "0000:81:00.0")
    assert a16["mdev"] == 1


def test_mdev_types_by_id_and_by_mapping(pve):
    types = pve.nodes("pve2").hardware.pci("0000:81:00.0").mdev.get()
    a16_4q = next(t for t in types if t["type"] == "nvidia-747")
    assert a16_4q["name"] == "NVIDIA A16-4Q" and "framebuffer=4096M" in a16_4q["description"]
    assert a16_4q["available"] == 3  # VM 103 runs one 4Q instance of the 4
    assert available(pve, "pve2", "vgpu-a16") == available(pve, "pve2", "0000:81:00.0")
    # one vGPU profile per physical GPU: other profiles are unavailable while a 4Q instance exists
    assert available(pve, "pve2", "0000:81:00.0")["nvidia-745"] == 0
    assert pve.nodes("pve1").hardware.pci("0000:41:00.0").mdev.get() == []


def test_second_vm_on_a_used_gpu_fails_with_pves_error(pve):
    pve.cluster.mapping.pci.post(id="l40s-a", map=["node=pve1,path=0000:41:00.0,id=10de:26b9"])
    create_vm(pve, "pve1", 110, "mapping=l40s-a,pcie=1")
    status = start(pve, "pve1", 110)  # VM 102 took 0000:41:00.0, the first path of gpu-l40s
    assert status["exitstatus"] == "PCI device '0000:41:00.0' already in use by VMID '102'"
    # the two-path mapping picks the free card; a third VM finds none left
    create_vm(pve, "pve1", 111, "mapping=gpu-l40s,pcie=1")
    assert start(pve, "pve1", 111)["exitstatus"] == "OK"
    create_vm(pve, "pve1", 112, "mapping=gpu-l40s,pcie=1")
    assert start(pve, "pve1", 112)["exitstatus"] == "could not find a free device for 'hostpci0'"
    assert stop(pve, "pve1", 102)["exitstatus"] == "OK"  # stopping releases the device
    assert start(pve, "pve1", 110)["exitstatus"] == "OK"


def test_mdev_instances_consume_and_release_availability(pve):
    create_vm(pve, "pve2", 120, "mapping=vgpu-a16,mdev=nvidia-747,pcie=1")
    create_vm(pve, "pve2", 121, "mapping=vgpu-a16,mdev=nvidia-747,pcie=1")
    assert available(pve, "pve2", "0000:81:00.0")["nvidia-747"] == 3
    assert start(pve, "pve2", 120)["exitstatus"] == "OK"
    assert available(pve, "pve2", "0000:81:00.0")["nvidia-747"] == 2
    assert start(pve, "pve2", 121)["exitstatus"] == "OK"
    assert available(pve, "pve2", "0000:81:00.0")["nvidia-747"] == 1
    assert stop(pve, "pve2", 120)["exitstatus"] == "OK"
    assert available(pve, "pve2", "0000:81:00.0")["nvidia-747"] == 2
    create_vm(pve, "pve2", 122, "mapping=vgpu-a16,mdev=nvidia-745,pcie=1")
    assert start(pve, "pve2", 122)["exitstatus"] == \
        "pci device '0000:81:00.0' has no available instances of 'nvidia-745'"
    create_vm(pve, "pve2", 123, "mapping=vgpu-a16,mdev=nvidia-999,pcie=1")
    assert start(pve, "pve2", 123)["exitstatus"] == "pci device '0000:81:00.0' has no type 'nvidia-999'"


def test_mapping_missing_on_the_node(pve):
    create_vm(pve, "pve3", 130, "mapping=gpu-l40s,pcie=1")
    assert start(pve, "pve3", 130)["exitstatus"] == "PCI device mapping not found for 'gpu-l40s'"


def test_mapping_crud_and_checks(pve):
    mappings = pve.cluster.mapping.pci
    mappings.post(id="nic", description="ConnectX-7", map=["node=pve1,path=0000:02:00.0,id=15b3:1021,iommugroup=12"])
    got = mappings("nic").get()
    assert got["map"] == ["node=pve1,path=0000:02:00.0,id=15b3:1021,iommugroup=12"] and got["description"] == "ConnectX-7"
    mappings("nic").put(map=["node=pve1,path=0000:02:00.0,id=15b3:9999"], description="renamed", digest=got["digest"])
    with pytest.raises(ResourceException) as exc:
        mappings("nic").put(description="stale", digest=got["digest"])
    assert exc.value.content == "detected modified configuration - file changed by other user? Try again."
    checks = next(m for m in mappings.get(**{"check-node": "pve1"}) if m["id"] == "nic")["checks"]
    assert checks == [{"severity": "error", "message": "'id' does not match for '0000:02:00.0' (15b3:1021 != 15b3:9999)"}]
    assert next(m for m in mappings.get(**{"check-node": "pve3"}) if m["id"] == "nic")["checks"] == [
        {"severity": "warning", "message": "No mapping for node pve3."}]
    assert "checks" not in next(m for m in mappings.get() if m["id"] == "nic")
    with pytest.raises(ResourceException) as exc:
        mappings.post(id="nic", map=["node=pve1,path=0000:02:00.0,id=15b3:1021"])
    assert exc.value.content.endswith("pci ID 'nic' already defined")
    with pytest.raises(ResourceException) as exc:
        mappings.post(id="bad", map=["node=pve1,path=0000:02:00.0"])
    assert exc.value.status_code == 400 and "map.id: property is missing and it is not optional" in exc.value.errors["map"]
    mappings("nic").delete()
    assert "nic" not in {m["id"] for m in mappings.get()}


# -- containers: devN is root@pam's alone (pve-container check_ct_modify_config_perm) ----------------

DEVN_REFUSED = "Permission check failed (configuring device passthrough is only allowed for root@pam)"


def root_ticket(sim):
    """proxmoxer logged in as root@pam by password: ticket cookie + CSRF header, as the GUI does."""
    from proxmoxer import ProxmoxAPI

    return ProxmoxAPI(sim.host, port=sim.info["port"], user="root@pam", password=sim.root_password,
                      verify_ssl=False, timeout=30)


def test_container_devn_is_refused_to_every_api_token_and_taken_from_a_root_ticket(sim, pve):
    """Even root@pam's own token (privsep off, every privilege) is refused, on create and on config
    writes and deletes, with Proxmox's 403; root@pam's ticket sets and removes it."""
    ct = pve.nodes("pve1").lxc(200)
    for call in (lambda: ct.config.put(dev0="/dev/nvidia0"),
                 lambda: pve.nodes("pve1").lxc.post(vmid=777, ostemplate="nfs-store:vztmpl/debian-12-standard_12.7-1_amd64.tar.zst",
                                                    rootfs="ceph-rbd:4", dev0="/dev/nvidia0")):
        with pytest.raises(ResourceException) as exc:
            call()
        assert (exc.value.status_code, exc.value.content) == (403, DEVN_REFUSED)
    root = root_ticket(sim)
    root.nodes("pve1").lxc(200).config.put(dev0="/dev/nvidia0,gid=44,mode=0666", dev1="/dev/nvidiactl")
    config = ct.config.get()
    assert (config["dev0"], config["dev1"]) == ("/dev/nvidia0,gid=44,mode=0666", "/dev/nvidiactl")
    with pytest.raises(ResourceException) as exc:
        ct.config.put(delete="dev1")  # removing one is the same privilege
    assert (exc.value.status_code, exc.value.content) == (403, DEVN_REFUSED)
    # A bad path is refused like Proxmox's pve-lxc-dev-string, root or not.
    with pytest.raises(ResourceException) as exc:
        root.nodes("pve1").lxc(200).config.put(dev2="/etc/shadow")
    assert exc.value.status_code == 400 and "dev2" in exc.value.errors
    root.nodes("pve1").lxc(200).config.put(delete="dev0,dev1")
    assert "dev0" not in ct.config.get()


def test_a_ticket_write_needs_its_csrf_token(sim, pve):
    import requests

    root = root_ticket(sim)
    ticket, _csrf = root.get_tokens()
    response = requests.put(f"{sim.url}/api2/json/nodes/pve1/lxc/200/config", data={"dev0": "/dev/nvidia0"},
                            cookies={"PVEAuthCookie": ticket}, verify=sim.cert, timeout=30)
    assert (response.status_code, response.reason) == (401, "Permission denied - invalid csrf token")
    assert "dev0" not in pve.nodes("pve1").lxc(200).config.get()
