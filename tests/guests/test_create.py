"""Create a VM / container end to end: API -> validation -> vmid reservation -> Celery worker ->
pvesim over HTTPS (create/clone, config, resize, start) -> targeted sync. Failures leave nothing."""

from urllib.parse import unquote

import pytest

from apps.guests.actions import create
from apps.guests.models import Guest, VmidReservation
from apps.nodes.models import Node
from apps.operations.models import Operation
from apps.storage.models import Storage
from apps.storage.services import storage_content_refresh

from tests.fixtures import wait_for

pytestmark = pytest.mark.django_db(transaction=True)

ISO = "nfs-store:iso/debian-13.1.0-amd64-netinst.iso"
VZTMPL = "nfs-store:vztmpl/debian-12-standard_12.7-1_amd64.tar.zst"
ED25519 = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl alice@laptop"
VM_URL, CT_URL = "/api/v1/guests/create-vm/", "/api/v1/guests/create-ct/"


@pytest.fixture
def inventory(sim_cluster):
    """The synced cluster plus its ISO/template lists (what the wizard offers)."""
    for storage in Storage.objects.filter(cluster=sim_cluster):
        storage_content_refresh(storage=storage)
    return sim_cluster


@pytest.fixture
def no_worker(monkeypatch):
    """Operations are saved but not sent to Celery: the test plays the worker (or its death) by hand."""
    monkeypatch.setattr("apps.operations.services._enqueue", lambda operation: None)


def final(op_id):
    o = Operation.objects.get(pk=op_id)
    if o.is_active or (o.status == "succeeded" and not o.events.filter(message__startswith="Succeeded").exists()):
        return None
    return o


def wait_done(op_id, expect):
    done = wait_for(lambda: final(op_id), timeout=90)
    assert done.status == expect, (done.error, [e.message for e in done.events.order_by("seq")])
    return done


def pve_guests(pve):
    return {int(g["vmid"]): g for g in pve.get("cluster/resources", type="vm")}


def vm_body(**extra):
    body = {"source": "iso", "iso": ISO, "name": "web-03", "cores": 2, "memory": 2048, "storage": "ceph-rbd",
            "disk_size": 20, "bridge": "vmbr0", "vlan": 30, "firewall": True, "node": "pve3"}
    body.update(extra)
    return body


def ct_body(**extra):
    body = {"ostemplate": VZTMPL, "hostname": "cache-01", "password": "s3cret-root-pw", "storage": "ceph-rbd",
            "disk_size": 8, "cores": 1, "memory": 512, "swap": 256, "node": "pve1"}
    body.update(extra)
    return body


def test_vm_from_iso(inventory, celery_worker, api, pve):
    op = api.post(VM_URL, vm_body(tags=["web", "prod"]), expect=202)
    assert op["kind"] == "guest.create" and op["status"] == "pending"
    vmid = int(op["target_id"].split(":")[1])
    assert VmidReservation.objects.filter(cluster=inventory, vmid=vmid, operation_id=op["id"]).exists()
    done = wait_done(op["id"], "succeeded")
    config = pve.get(f"nodes/pve3/qemu/{vmid}/config")
    assert config["name"] == "web-03" and int(config["cores"]) == 2 and str(config["memory"]) == "2048"
    assert config["ide2"].startswith(f"{ISO},media=cdrom")
    assert config["scsi0"].startswith(f"ceph-rbd:vm-{vmid}-disk-") and "size=20G" in config["scsi0"]
    assert "bridge=vmbr0" in config["net0"] and "tag=30" in config["net0"] and "firewall=1" in config["net0"]
    assert config["tags"] == "web;prod" and "ipconfig0" not in config  # no cloud-init unless asked
    guest = Guest.objects.get(cluster=inventory, vmid=vmid)  # in the inventory at once, before any sync
    assert guest.node.name == "pve3" and guest.name == "web-03" and guest.status == "stopped"
    assert done.target_type == "guests.guest" and done.target_id == str(guest.pk)
    assert done.result == {"vmid": vmid, "node": "pve3", "guest": guest.pk}
    assert not VmidReservation.objects.filter(cluster=inventory, vmid=vmid).exists()


def test_vm_from_template_with_cloud_init_full_clone_resized_and_started(inventory, celery_worker, api, pve):
    body = vm_body(source="template", template=9000, clone="full", name="app-01", storage="ceph-rbd",
                   disk_size=12, cores=4, memory=4096, vlan=None, node="pve1", start=True,
                   ci_user="deploy", ssh_keys=ED25519 + "\n", ip_mode="static", ip="10.20.0.50/24",
                   gateway="10.20.0.1", nameservers="10.20.0.2 10.20.0.3", searchdomain="example.net")
    op = api.post(VM_URL, body, expect=202)
    vmid = int(op["target_id"].split(":")[1])
    done = wait_done(op["id"], "succeeded")
    config = pve.get(f"nodes/pve1/qemu/{vmid}/config")
    assert config["name"] == "app-01" and int(config["cores"]) == 4 and str(config["memory"]) == "4096"
    assert config["ciuser"] == "deploy"
    assert unquote(config["sshkeys"]).strip() == ED25519
    assert config["ipconfig0"] == "ip=10.20.0.50/24,gw=10.20.0.1"
    assert config["nameserver"] == "10.20.0.2 10.20.0.3" and config["searchdomain"] == "example.net"
    assert "size=12G" in config["scsi0"] and "base-9000" not in config["scsi0"]  # full copy, grown from 8G
    kinds = [u.split(":")[5] for u in done.upids]
    assert kinds == ["qmclone", "resize", "qmstart"]
    assert any(e.progress and 0 < e.progress < 70 for e in done.events.all())  # clone percentage from the log
    assert pve_guests(pve)[vmid]["status"] == "running"
    assert Guest.objects.get(cluster=inventory, vmid=vmid).status == "running"


def test_linked_clone_keeps_the_template_base(inventory, celery_worker, api, pve):
    op = api.post(VM_URL, vm_body(source="template", template=9000, clone="linked", name="lc-01", storage="",
                                  disk_size=8, node=""), expect=202)
    vmid = int(op["target_id"].split(":")[1])
    wait_done(op["id"], "succeeded")
    config = pve.get(f"nodes/pve1/qemu/{vmid}/config")  # linked clones stay on the template's node
    assert "base-9000-disk-0/" in config["scsi0"] and config["ipconfig0"] == "ip=dhcp"


def test_template_clone_placement_reads_the_template_config_instead_of_guessing(inventory, operator):
    template = Guest.objects.get(cluster=inventory, vmid=9000)
    assert template.config == {}  # the sync never reads configs: the template's disks are not known yet
    body = vm_body(source="template", template=9000, clone="linked", name="lc-02", storage="", disk_size=8,
                   vlan=None, node="pve2")
    plan, errors = create.plan_vm(user=operator, data=body)
    assert not errors and plan["node"] == "pve2"  # its disks are on the shared Ceph pool
    assert Guest.objects.get(pk=template.pk).config["scsi0"].startswith("ceph-rbd:base-9000-disk-0")
    # Known to be local: refused, naming the storage and the node.
    Guest.objects.filter(pk=template.pk).update(config={"scsi0": "local-zfs:base-9000-disk-0,size=8G"})
    plan, errors = create.plan_vm(user=operator, data=body)
    assert plan is None and errors["node"] == [
        "the template's disks are on local-zfs, local to node pve1 (or not in the inventory yet)"]


def test_container_from_template(inventory, celery_worker, api, pve):
    op = api.post(CT_URL, ct_body(ssh_keys=ED25519, nesting=True, ip_mode="static", ip="10.30.0.9/24",
                                  gateway="10.30.0.1", start=True), expect=202)
    assert "s3cret" not in str(Operation.objects.get(pk=op["id"]).task_kwargs)  # never in the queue
    vmid = int(op["target_id"].split(":")[1])
    wait_done(op["id"], "succeeded")
    config = pve.get(f"nodes/pve1/lxc/{vmid}/config")
    assert config["hostname"] == "cache-01" and int(config["unprivileged"]) == 1
    assert config["features"] == "nesting=1" and int(config["swap"]) == 256
    assert config["rootfs"].startswith(f"ceph-rbd:vm-{vmid}-disk-") and "size=8G" in config["rootfs"]
    assert "ip=10.30.0.9/24" in config["net0"] and "gw=10.30.0.1" in config["net0"]
    assert pve_guests(pve)[vmid]["status"] == "running"
    assert Guest.objects.get(cluster=inventory, vmid=vmid).type == "lxc"


def test_automatic_placement_picks_the_online_node_with_most_free_memory(inventory, celery_worker, api, pve):
    online = Node.objects.filter(cluster=inventory, status="online")
    best = max(online, key=lambda n: (n.maxmem - n.mem, n.name))
    op = api.post(VM_URL, vm_body(node="", name="auto-01"), expect=202)
    vmid = int(op["target_id"].split(":")[1])
    wait_done(op["id"], "succeeded")
    assert pve_guests(pve)[vmid]["node"] == best.name


def test_automatic_placement_only_uses_nodes_that_have_the_storage(inventory, celery_worker, api, pve):
    # local-zfs is local: each node has its own; take two nodes' rows away, only one node remains.
    keep = Node.objects.get(cluster=inventory, name="pve3")
    Storage.objects.filter(cluster=inventory, storage="local-zfs").exclude(node=keep).delete()
    op = api.post(VM_URL, vm_body(node="", name="zfs-01", storage="local-zfs"), expect=202)
    vmid = int(op["target_id"].split(":")[1])
    wait_done(op["id"], "succeeded")
    assert pve_guests(pve)[vmid]["node"] == "pve3"


@pytest.mark.parametrize("body, field, text", [
    (vm_body(memory=8), "memory", "between 64"),
    (vm_body(disk_size=0), "disk_size", "between 1"),
    (vm_body(cores=500), "cores", "between 1"),
    (vm_body(name="web_03!"), "name", "DNS name"),
    (vm_body(vlan=5000), "vlan", "between 1 and 4,094"),
    (vm_body(bridge="vmbr0; rm -rf"), "bridge", "bridge name"),
    (vm_body(cloudinit=True, ssh_keys="ssh-rsa not-a-key"), "ssh_keys", "line 1: not an OpenSSH public key"),
    (vm_body(cloudinit=True, ip_mode="static", ip="10.0.0.300/24"), "ip", "not an IPv4 address"),
    (vm_body(cloudinit=True, ip_mode="static", ip="10.0.0.5", gateway="10.0.0.1"), "ip", "prefix length"),
    (vm_body(cloudinit=True, ip_mode="static", ip="10.0.0.5/24", gateway="10.0.1.1"), "gateway",
     "not in the subnet 10.0.0.0/24"),
    (vm_body(cloudinit=True, nameservers="dns.example"), "nameservers", "not an IP address"),
    (vm_body(storage="nfs-store"), "storage", "does not hold VM disks"),
    (vm_body(storage="local-zfs", node="pve9"), "node", "no node named 'pve9'"),
    (vm_body(iso=VZTMPL), "iso", "not an ISO image"),
    (vm_body(iso="nfs-store:iso/missing.iso"), "iso", "not in the synced content"),
    (vm_body(source="template", template=104), "template", "is not a template"),
    (vm_body(source="template", template=200), "template", "is a container"),
    (vm_body(disk_size=60000), "storage", "not enough free space"),
    (vm_body(memory=600 * 1024), "memory", "has only"),
    (vm_body(tags=["ok", "bad tag!"]), "tags", "not a valid tag"),
    (vm_body(pool="acme corp"), "pool", "not a valid pool name"),
    (ct_body(hostname="-bad-"), "hostname", "DNS name"),
    (ct_body(password="short"), "password", "at least 8"),
    (ct_body(password=""), "password", "root password or at least one SSH public key"),
    (ct_body(storage="nfs-store"), "storage", "does not hold container volumes"),
    (ct_body(ostemplate=ISO), "ostemplate", "not a CT template"),
    (ct_body(swap=-1), "swap", "between 0"),
])
def test_field_errors_before_anything_reaches_proxmox(inventory, api, pvesim, body, field, text):
    if body["storage"] == "ceph-rbd" and "disk_size" in body and body["disk_size"] == 60000:
        Storage.objects.filter(cluster=inventory, storage="ceph-rbd").update(maxdisk=50000 * 2**30, disk=0)
    before = pvesim.counters()
    url = CT_URL if "hostname" in body else VM_URL
    response = api.post(url, body, expect=400)
    assert any(text in message for message in response["errors"][field]), response
    assert not Operation.objects.exists() and not VmidReservation.objects.exists()
    assert pvesim.counters()["total"] == before["total"]  # not even /cluster/nextid


def test_non_operators_may_not_create(inventory, api_for, user):
    api_for(user).post(VM_URL, vm_body(), expect=403)
    assert not Operation.objects.exists()


def test_injected_create_failure_leaves_nothing_behind(inventory, celery_worker, api, pve, pvesim):
    before = set(pve_guests(pve))
    pvesim.admin("POST", "/faults/task-failure", type="qmcreate", message="unable to create image: got lock timeout")
    op = api.post(VM_URL, vm_body(name="doomed-01"), expect=202)
    done = wait_done(op["id"], "failed")
    assert "Could not create VM" in done.error and "creating it failed" in done.error
    assert done.error.endswith("Proxmox said: unable to create image: got lock timeout")
    assert set(pve_guests(pve)) == before
    assert not VmidReservation.objects.exists()
    assert not Guest.objects.filter(cluster=inventory, name="doomed-01").exists()


def test_failure_after_the_guest_exists_removes_it_from_proxmox(inventory, celery_worker, api, pve, pvesim):
    before = set(pve_guests(pve))
    pvesim.admin("POST", "/faults/task-failure", type="vzstart", message="startup for container failed")
    op = api.post(CT_URL, ct_body(hostname="doomed-ct", start=True), expect=202)
    done = wait_done(op["id"], "failed")
    assert "starting it failed" in done.error and done.error.endswith("startup for container failed")
    kinds = [u.split(":")[5] for u in done.upids]
    assert kinds[:2] == ["vzcreate", "vzstart"]
    assert any("Removed" in e.message for e in done.events.all())
    assert set(pve_guests(pve)) == before  # created, then purged
    volumes = [v["volid"] for v in pve.get("nodes/pve1/storage/ceph-rbd/content")]
    vmid = int(op["target_id"].split(":")[1])
    assert not [v for v in volumes if f"-{vmid}-" in v]
    assert not VmidReservation.objects.exists() and not Guest.objects.filter(vmid=vmid).exists()


def test_a_retried_run_does_not_create_twice(inventory, api, pve, operator, no_worker):
    """The first worker POSTed the create and died; the redelivered task finds its guest and resumes."""
    operation = create.guest_create_vm(user=operator, data=vm_body(name="retry-01"))
    vmid = operation.task_kwargs["vmid"]
    plan = operation.task_kwargs["plan"]
    upid = pve.post("nodes/pve3/qemu", vmid=vmid, **plan["create"])  # what the dead worker did
    from datetime import timedelta

    from django.utils import timezone
    Operation.objects.filter(pk=operation.pk).update(
        status="running", upids=[upid], current_upid=upid, step="create", resume_token="t1",
        heartbeat_at=timezone.now() - timedelta(hours=1))
    create.guest_create(str(operation.pk), plan=plan, vmid=vmid)  # a duplicate delivery: no token, no run
    assert Operation.objects.get(pk=operation.pk).status == "running"
    create.guest_create(str(operation.pk), plan=plan, vmid=vmid, resume_token="t1")  # the reconciler's hand-over
    done = Operation.objects.get(pk=operation.pk)
    assert done.status == "succeeded", done.error
    assert any("not creating it again" in e.message for e in done.events.all())
    named = [g for g in pve_guests(pve).values() if g.get("name") == "retry-01"]
    assert len(named) == 1 and int(named[0]["vmid"]) == vmid
    assert done.upids == [upid]  # no second qmcreate
    create.guest_create(str(operation.pk), plan=plan, vmid=vmid)  # and again: a finished one is not re-run
    assert len([g for g in pve_guests(pve).values() if g.get("name") == "retry-01"]) == 1


def test_janitor_removes_the_guest_of_a_create_that_ended_without_its_worker(inventory, api, pve, operator,
                                                                               no_worker):
    operation = create.guest_create_vm(user=operator, data=vm_body(name="orphan-01"))
    vmid, plan = operation.task_kwargs["vmid"], operation.task_kwargs["plan"]
    upid = pve.post("nodes/pve3/qemu", vmid=vmid, **plan["create"])
    wait_for(lambda: pve.get(f"nodes/pve3/tasks/{upid}/status")["status"] == "stopped")
    # The reconciler failed it (worker gone): the reservation is still held.
    Operation.objects.filter(pk=operation.pk).update(status="failed", upids=[upid], heartbeat_at=None)
    assert create.guest_create_cleanup(str(operation.pk)) == "cleaned"
    assert vmid not in pve_guests(pve)
    assert not VmidReservation.objects.exists()


def test_vmids_are_reserved_once_each(inventory, operator, no_worker):
    ops = [create.guest_create_vm(user=operator, data=vm_body(name=f"many-{i}")) for i in range(5)]
    vmids = [o.task_kwargs["vmid"] for o in ops]
    assert len(set(vmids)) == 5 and min(vmids) >= 105
    assert set(VmidReservation.objects.values_list("vmid", flat=True)) == set(vmids)


# -- the wizard (server side; the browser walk is tests/e2e/test_create_wizard.py) --------------------

WIZARD = "/guests/create/vm/"
HX = {"HTTP_HX_REQUEST": "true"}


def wizard_post(client, step, nav, **fields):
    data = {"_step": step, "_nav": nav, "source": "iso", "iso": ISO, "clone": "linked", "name": "wiz-01",
            "cores": "2", "memory": "2048", "storage": "ceph-rbd", "disk_size": "16", "bridge": "vmbr0",
            "firewall": "on", "ostype": "l26", "ip_mode": "dhcp", "node": ""}
    data.update(fields)
    return client.post(WIZARD, data, **HX)


def test_wizard_offers_only_the_inventory(inventory, client, pvesim):
    before = pvesim.counters()["total"]
    page = client.get(WIZARD).content.decode()
    assert ISO in page and "9000 debian-13-cloud" in page  # ISO list and templates from the DB
    assert 'value="ceph-rbd"' in page and 'value="nfs-store"' not in page  # only storages holding disks
    assert "Automatic" in page and 'value="pve3"' in page
    assert pvesim.counters()["total"] == before  # rendering the wizard never asks Proxmox


def test_wizard_steps_validate_on_the_server(inventory, client):
    page = wizard_post(client, "source", "next").content.decode()
    assert 'data-step="hardware"' in page and 'aria-current="step"' in page
    page = wizard_post(client, "hardware", "next", memory="8", name="bad name").content.decode()
    assert "must be between 64" in page and "must be a DNS name" in page
    assert '<section class="step" data-step="hardware">' in page  # stays on the step with the errors
    page = wizard_post(client, "cloudinit", "next", cloudinit="on", ssh_keys="ssh-rsa nope").content.decode()
    assert "line 1: not an OpenSSH public key" in page
    page = wizard_post(client, "placement", "next").content.decode()
    assert '<section class="step" data-step="review">' in page and "automatic: most free memory" in page
    page = wizard_post(client, "review", "back").content.decode()
    assert '<section class="step" data-step="placement">' in page


def test_wizard_submit_queues_the_operation_and_answers_its_progress_panel(inventory, client, celery_worker):
    response = wizard_post(client, "review", "create", tags="web", start="")
    page = response.content.decode()
    operation = Operation.objects.get(kind="guest.create")
    assert f'id="operation-{operation.pk}"' in page and "ws-connect" in page
    done = wait_done(operation.pk, "succeeded")
    assert Guest.objects.get(pk=done.result["guest"]).name == "wiz-01"


def test_wizard_is_for_operators(inventory, user_client):
    assert user_client.get(WIZARD).status_code == 403


def test_cancelled_clone_leaves_nothing_behind(inventory, celery_worker, api, pve, pvesim):
    before = set(pve_guests(pve))
    pvesim.admin("POST", "/time-scale", scale=1)  # a 20 s full clone: time to cancel it mid-copy
    try:
        op = api.post(VM_URL, vm_body(source="template", template=9000, clone="full", name="cancel-01",
                                      vlan=None, node="pve1", disk_size=8), expect=202)
        wait_for(lambda: Operation.objects.get(pk=op["id"]).current_upid)
        api.post(f"/api/v1/operations/{op['id']}/cancel/", expect=202)
        wait_for(lambda: not VmidReservation.objects.exists(), timeout=90)
    finally:
        pvesim.admin("POST", "/time-scale", scale=pvesim.time_scale)
    done = Operation.objects.get(pk=op["id"])
    assert done.status == "cancelled"
    messages = [e.message for e in done.events.order_by("seq")]
    assert any("Nothing of" in m or "Removed" in m for m in messages), "\n".join(messages)
    assert set(pve_guests(pve)) == before


def test_a_vmid_taken_outside_the_portal_fails_and_that_guest_is_left_alone(inventory, pve, operator, no_worker):
    operation = create.guest_create_vm(user=operator, data=vm_body(name="mine-01"))
    vmid, plan = operation.task_kwargs["vmid"], operation.task_kwargs["plan"]
    upid = pve.post("nodes/pve3/qemu", vmid=vmid, name="someone-else", memory=512)
    wait_for(lambda: pve.get(f"nodes/pve3/tasks/{upid}/status")["status"] == "stopped")
    create.guest_create(str(operation.pk), plan=plan, vmid=vmid)
    done = Operation.objects.get(pk=operation.pk)
    assert done.status == "failed" and "was taken on Proxmox outside the portal by 'someone-else'" in done.error
    assert pve_guests(pve)[vmid]["name"] == "someone-else"  # never removed by our clean-up
    assert not VmidReservation.objects.filter(operation_id=operation.pk).exists()
