"""Changing a guest's config end to end: API/form -> config PUT with digest (sync) -> resize tasks in
the worker -> pvesim's config -> targeted re-read. Real pvesim over HTTPS, real worker, real Redis."""

import re
from urllib.parse import unquote

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519

from apps.guests.actions.config import CONFLICT_TEXT
from apps.guests.models import Guest
from apps.guests.services import guest_refresh
from apps.operations.models import Operation

from tests.fixtures import wait_for

pytestmark = pytest.mark.django_db(transaction=True)
PROXMOX_CONFLICT = "detected modified configuration - file changed by other user? Try again."


def ssh_key(comment="alice@laptop") -> str:
    key = ed25519.Ed25519PrivateKey.generate().public_key()
    text = key.public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH).decode()
    return f"{text} {comment}"


def fresh(cluster, vmid) -> Guest:
    """The guest after a targeted read (what opening the edit form does)."""
    guest = Guest.objects.select_related("node", "cluster").get(cluster=cluster, vmid=vmid)
    guest_refresh(guest=guest)
    guest.refresh_from_db()
    return guest


def final(op_id) -> Operation | None:
    o = Operation.objects.get(pk=op_id)
    if o.is_active or (o.status == "succeeded" and not o.events.filter(message__startswith="Succeeded").exists()):
        return None
    return o


def patch(api, guest, body, expect=202):
    return api.patch(f"/api/v1/guests/{guest.pk}/config/", body, expect=expect)


def done(op, status="succeeded") -> Operation:
    o = wait_for(lambda: final(op["id"]))
    assert o.status == status, (o.error, [e.message for e in o.events.order_by("seq")])
    return o


def pve_config(pve, guest) -> dict:
    return pve.get(f"nodes/{guest.node.name}/{guest.type}/{guest.vmid}/config")


def test_get_config_gives_the_digest_of_the_last_read(sim_cluster, api, pve):
    vm = fresh(sim_cluster, 104)
    body = api.get(f"/api/v1/guests/{vm.pk}/config/")
    assert body["digest"] == pve_config(pve, vm)["digest"]
    assert body["config"]["cores"] == 8


def test_general_settings_reach_proxmox_and_are_read_back(sim_cluster, celery_worker, api, pve):
    vm = fresh(sim_cluster, 104)
    op = patch(api, vm, {"digest": vm.config_digest, "cores": 4, "memory": 16384, "tags": ["db", "prod"],
                         "description": "main database", "protection": True, "onboot": True})
    assert op["kind"] == "guest.config"
    o = done(op)
    assert any(e.message.startswith("Configuration saved in Proxmox: cores 8 → 4") for e in o.events.all())
    config = pve_config(pve, vm)
    assert (config["cores"], str(config["memory"]), config["tags"]) == (4, "16384", "db;prod")
    assert config["description"] == "main database" and config["protection"] == 1 and config["onboot"] == 1
    vm.refresh_from_db()
    assert vm.config["cores"] == 4 and vm.config_digest == config["digest"]  # the worker re-read it


def test_two_editors_the_second_gets_a_conflict_with_proxmoxs_message(sim_cluster, api, pve):
    vm = fresh(sim_cluster, 104)
    opened_digest = vm.config_digest
    # Someone else saves in between (another portal user or Proxmox's own UI).
    pve.put("nodes/pve3/qemu/104/config", cores=2)
    body = patch(api, vm, {"digest": opened_digest, "memory": 4096}, expect=409)
    assert body["detail"].startswith(CONFLICT_TEXT)
    assert body["proxmox_message"] == PROXMOX_CONFLICT
    config = pve_config(pve, vm)
    assert str(config["memory"]) == "32768" and config["cores"] == 2  # ours was not applied
    assert not Operation.objects.filter(kind="guest.config").exists()


def test_resize_grows_and_refuses_shrinking_before_proxmox(sim_cluster, celery_worker, api, pve):
    vm = fresh(sim_cluster, 104)  # scsi0 is 100G
    body = patch(api, vm, {"digest": vm.config_digest, "resize": {"scsi0": 50}}, expect=400)
    assert body["errors"]["resize.scsi0"] == ["disks can only grow: scsi0 is 100G now; give at least 100 GiB"]
    assert "size=100G" in pve_config(pve, vm)["scsi0"]
    o = done(patch(api, vm, {"digest": vm.config_digest, "resize": {"scsi0": 120}}))
    assert any(":resize:104:" in u for u in o.upids)
    assert any(e.message == "Growing disk scsi0 to 120G" for e in o.events.all())
    assert "size=120G" in pve_config(pve, vm)["scsi0"]


def test_add_disk_nic_change_vlan_and_remove_nic(sim_cluster, celery_worker, api, pve):
    vm = fresh(sim_cluster, 104)
    done(patch(api, vm, {"digest": vm.config_digest, "add_disks": [{"storage": "ceph-rbd", "size": 4}],
                         "add_nets": [{"bridge": "vmbr1", "vlan": 30, "firewall": True}],
                         "nets": {"net0": {"vlan": None, "firewall": True}}}))
    config = pve_config(pve, vm)
    assert config["scsi1"].startswith("ceph-rbd:vm-104-disk-") and "size=4G" in config["scsi1"]
    assert re.fullmatch(r"virtio=[0-9A-F:]{17},bridge=vmbr1,tag=30,firewall=1", config["net1"]), config["net1"]
    assert "tag=" not in config["net0"] and "firewall=1" in config["net0"]
    assert config["net0"].startswith("virtio=BC:24:11:0A:01:04,bridge=vmbr0")  # the MAC stays
    vm.refresh_from_db()
    done(patch(api, vm, {"digest": vm.config_digest, "remove_nets": ["net1"]}))
    assert "net1" not in pve_config(pve, vm)


def test_cloud_init_user_keys_and_static_ip(sim_cluster, celery_worker, api, pve):
    vm = fresh(sim_cluster, 9000)
    keys = [ssh_key(), ssh_key("bob@desk")]
    done(patch(api, vm, {"digest": vm.config_digest, "ciuser": "ops", "sshkeys": "\n".join(keys),
                         "ip": "10.20.0.50/24", "gateway": "10.20.0.1"}))
    config = pve_config(pve, vm)
    assert config["ciuser"] == "ops" and config["ipconfig0"] == "ip=10.20.0.50/24,gw=10.20.0.1"
    assert unquote(config["sshkeys"]).split() == " ".join(keys).split()


def test_container_swap_and_address(sim_cluster, celery_worker, api, pve):
    ct = fresh(sim_cluster, 200)
    done(patch(api, ct, {"digest": ct.config_digest, "swap": 1024, "ip": "10.20.0.9/24", "gateway": "10.20.0.1",
                         "add_disks": [{"storage": "ceph-rbd", "size": 2, "mountpoint": "/srv/data"}]}))
    config = pve_config(pve, ct)
    assert config["swap"] == 1024
    assert config["mp0"].startswith("ceph-rbd:vm-200-disk-") and "mp=/srv/data" in config["mp0"]
    assert "ip=10.20.0.9/24" in config["net0"] and "gw=10.20.0.1" in config["net0"] and "name=eth0" in config["net0"]


def test_bad_input_is_refused_field_by_field_and_nothing_changes(sim_cluster, api, pve):
    vm = fresh(sim_cluster, 104)
    before = pve_config(pve, vm)["digest"]
    body = patch(api, vm, {
        "digest": vm.config_digest, "memory": 8, "cores": 0, "tags": ["ok", "-bad"], "sshkeys": "ssh-rsa notakey",
        "ip": "10.0.0.5", "resize": {"scsi9": 10}, "add_disks": [{"storage": "local", "size": 0}],
        "nets": {"net0": {"vlan": 5000}}, "add_nets": [{"bridge": "bad bridge!"}]}, expect=400)
    errors = body["errors"]
    assert errors["memory"] == ["must be between 16 MiB and 4194304 MiB"]
    assert errors["cores"] == ["must be between 1 and 512"]
    assert "invalid tag '-bad'" in errors["tags"][0]
    assert errors["sshkeys"][0].startswith("line 1 is not an OpenSSH public key")
    assert "prefix length" in errors["ip"][0]
    assert errors["resize.scsi9"] == ["VM has no disk scsi9 that can be resized"]
    assert "'local' is not a storage for disk images on node pve3" in errors["add_disks.0.storage"][0]
    assert errors["add_disks.0.size"] == ["give a size between 1 and 131072 GiB"]
    assert errors["nets.net0.vlan"] == ["a VLAN tag is between 1 and 4094 (empty for none)"]
    assert errors["add_nets.0.bridge"] == ["give a bridge name such as vmbr0"]
    gw = patch(api, vm, {"ip": "10.0.0.5/24", "gateway": "10.9.9.1"}, expect=400)["errors"]
    assert gw["gateway"] == ["10.9.9.1 is not inside 10.0.0.0/24"]
    assert pve_config(pve, vm)["digest"] == before


def test_nothing_to_change_and_locked_guest(sim_cluster, api, pve, pvesim):
    from tests.guests.test_power import root_put

    vm = fresh(sim_cluster, 104)
    body = patch(api, vm, {"cores": 8, "digest": vm.config_digest}, expect=400)
    assert body["errors"]["non_field_errors"] == ["nothing to change: every value is what the guest already has"]
    root_put(pvesim, "nodes/pve3/qemu/104/config", lock="backup")
    body = patch(api, vm, {"cores": 2}, expect=409)
    assert "it is locked (backup: a backup is running)" in body["detail"]
    assert body["proxmox_message"] == "VM is locked (backup)"


def test_injected_resize_failure_is_shown_in_words_and_proxmoxs_text(sim_cluster, celery_worker, api, pve, pvesim):
    vm = fresh(sim_cluster, 104)
    pvesim.admin("POST", "/faults/task-failure", type="resize", message="storage 'ceph-rbd' is not online")
    o = done(patch(api, vm, {"digest": vm.config_digest, "cores": 6, "resize": {"scsi0": 110}}), status="failed")
    assert o.error == "Could not grow disk scsi0 of VM 104 (db-01). Proxmox said: storage 'ceph-rbd' is not online"
    assert pve_config(pve, vm)["cores"] == 6  # the PUT step had succeeded; the event log says so
    assert "size=100G" in pve_config(pve, vm)["scsi0"]


def test_edit_page_reads_fresh_then_saves_and_shows_conflicts(sim_cluster, celery_worker, client, pve):
    vm = Guest.objects.get(cluster=sim_cluster, vmid=104)
    html = client.get(f"/guests/{vm.pk}/config/").content.decode()
    assert "Reading the current configuration from Proxmox" in html
    since = re.search(r"since=([0-9.]+)", html).group(1)
    form_url = f"/guests/{vm.pk}/config/form/?since={since}"

    def form_html():
        text = client.get(form_url, HTTP_HX_REQUEST="true").content.decode()
        return text if 'name="digest"' in text else None

    html = wait_for(form_html, timeout=30, interval=0.2)
    digest = pve_config(pve, vm)["digest"]
    assert f'value="{digest}"' in html and 'name="resize_scsi0"' in html and 'name="nets_net0_bridge"' in html
    data = {"digest": digest, "cores": "2", "memory": "32768", "tags": "", "description": "", "ip": "",
            "gateway": "", "ciuser": "", "sshkeys": "", "resize_scsi0": "100", "nets_net0_bridge": "vmbr0",
            "nets_net0_vlan": "20"}
    saved = client.post(f"/guests/{vm.pk}/config/form/", data, HTTP_HX_REQUEST="true").content.decode()
    assert "Saving the changes" in saved and "operation-progress" in saved
    assert pve_config(pve, vm)["cores"] == 2
    # The same stale form again: Proxmox's digest moved on.
    conflict = client.post(f"/guests/{vm.pk}/config/form/", {**data, "cores": "3"}, HTTP_HX_REQUEST="true")
    text = conflict.content.decode()
    assert CONFLICT_TEXT.replace("'", "&#x27;") in text and PROXMOX_CONFLICT in text
    bad = client.post(f"/guests/{vm.pk}/config/form/", {**data, "resize_scsi0": "10", "digest": ""},
                      HTTP_HX_REQUEST="true").content.decode()
    assert "disks can only grow: scsi0 is 100G now" in bad
