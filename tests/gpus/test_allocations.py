"""Giving guests GPUs against pvesim's GPU scenario: the create wizard/API's `gpu_profile` places
the guest where a card is free and writes hostpciN (containers' devN: test_containers.py);
allocations are exact under concurrent requests; quotas per profile; attach/detach on a stopped VM; a deleted guest frees its card; a
start Proxmox refuses because another VM holds the card names that VM."""

from __future__ import annotations

import threading

import pytest
from django.db import connection

from apps.gpus import profiles
from apps.gpus.models import GpuAllocation, GpuDevice, GpuProfile
from apps.gpus.placement import free_by_node
from apps.gpus.services import gpu_inventory_refresh
from apps.guests.models import Guest
from apps.operations.models import Operation
from apps.permissions.models import Membership, Quota, Tenant, TenantPool
from apps.storage.models import Storage
from apps.storage.services import storage_content_refresh

from tests.conftest import Api
from tests.fixtures import gpu_inventory, sync, wait_for, wait_task
from tests.guests.test_create import wait_done

pytestmark = pytest.mark.django_db(transaction=True)

ISO = "nfs-store:iso/debian-13.1.0-amd64-netinst.iso"
VZTMPL = "nfs-store:vztmpl/debian-12-standard_12.7-1_amd64.tar.zst"
VM_URL, CT_URL = "/api/v1/guests/create-vm/", "/api/v1/guests/create-ct/"


@pytest.fixture
def gpus(sim_cluster):
    """The synced demo cluster with its ISO/template lists and its GPU inventory."""
    for storage in Storage.objects.filter(cluster=sim_cluster):
        storage_content_refresh(storage=storage)
    gpu_inventory(sim_cluster)  # waits out a refresh the worker may be running
    return sim_cluster


def profile(cluster, operator, **data):
    pve1 = list(GpuDevice.objects.filter(cluster=cluster, node__name="pve1").order_by("pci_id"))
    a16 = GpuDevice.objects.get(cluster=cluster, node__name="pve2")
    presets = {
        "a16-4q": {"name": "A16 4Q vGPU", "kind": "mdev", "mdev_type": "nvidia-747", "devices": [a16.pk],
                   "mapping_id": "vgpu-a16"},
        "l40s": {"name": "L40S full card", "kind": "passthrough", "devices": [d.pk for d in pve1],
                 "mapping_id": "gpu-l40s"},
        "l40s-one": {"name": "L40S one card", "kind": "passthrough", "devices": [pve1[0].pk],
                     "mapping_id": "l40s-one"},
        "shared": {"name": "L40S shared", "kind": "lxc", "devices": [pve1[0].pk], "shares": 8, "gid": 44,
                   "mode": "0666", "device_nodes": ["/dev/nvidia0", "/dev/nvidiactl", "/dev/nvidia-uvm"]},
    }
    preset = presets[data.pop("preset")]
    return profiles.gpu_profile_save(user=operator, cluster=cluster, data={**preset, **data})


def vm_body(name: str, gpu_profile: int, **extra):
    return {"source": "iso", "iso": ISO, "name": name, "cores": 2, "memory": 2048, "storage": "ceph-rbd",
            "disk_size": 10, "bridge": "vmbr0", "gpu_profile": gpu_profile, **extra}


def parallel(users_and_bodies, url):
    """POST every body at once (one thread each); returns [(status, json)]."""
    start, results, lock = threading.Barrier(len(users_and_bodies)), [], threading.Lock()

    def post(user, body):
        try:
            client = Api(user)
            start.wait(timeout=30)
            response = client.client.post(url, body, format="json")
            with lock:
                results.append((response.status_code, response.json()))
        finally:
            connection.close()

    threads = [threading.Thread(target=post, args=pair) for pair in users_and_bodies]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=90)
    assert len(results) == len(users_and_bodies)
    return results


def test_a_vgpu_create_lands_on_the_card_and_frees_it_when_deleted(gpus, celery_worker, api, operator, pve, client):
    four_q = profile(gpus, operator, preset="a16-4q")
    assert free_by_node(four_q) == {"pve2": 4}
    op = api.post(VM_URL, vm_body("vdi-07", four_q.pk), expect=202)
    assert op["title"].endswith("on pve2")  # the only node with a free A16 4Q, chosen automatically
    vmid = int(op["target_id"].split(":")[1])
    assert free_by_node(four_q) == {"pve2": 3}  # held from the request on, before Proxmox was asked
    wait_done(op["id"], "succeeded")
    config = pve.get(f"nodes/pve2/qemu/{vmid}/config")
    assert config["hostpci0"] == "mapping=vgpu-a16,mdev=nvidia-747,pcie=1" and config["machine"] == "q35"
    allocation = wait_for(lambda: GpuAllocation.objects.filter(vmid=vmid, state="active").first(), timeout=10)
    assert (allocation.slots, allocation.device.pci_id) == ("hostpci0", "0000:81:00.0")
    # The map names the guest inside the A16's card.
    html = client.get("/gpus/").content.decode()
    card = html[html.index('data-pci-id="0000:81:00.0"'):]
    assert "vdi-07" in card[:card.index("</article>")]
    assert api.get(f"/api/v1/gpu-allocations/?vmid={vmid}")["results"][0]["profile_name"] == "A16 4Q vGPU"

    # Deleted (here behind the portal's back): the next sync frees the card.
    wait_task(pve, pve.delete(f"nodes/pve2/qemu/{vmid}"))
    sync(gpus)
    assert not GpuAllocation.objects.filter(vmid=vmid).exists()
    assert free_by_node(four_q) == {"pve2": 4}


def test_ten_parallel_requests_for_three_free_instances_get_exactly_three(gpus, no_worker, operator, pve):
    four_q = profile(gpus, operator, preset="a16-4q")
    # VM 103 runs an A16-4Q instance given outside the portal: the next GPU refresh reads the configs
    # of guests on the profile's node never read before (once), and counts it.
    assert free_by_node(four_q) == {"pve2": 4}
    result = gpu_inventory_refresh(cluster=gpus)
    assert result.changed["allocations_adopted"] == 1 and not result.errors
    assert GpuAllocation.objects.get(profile=four_q).vmid == 103
    assert free_by_node(four_q) == {"pve2": 3}
    assert "allocations_adopted" in gpu_inventory_refresh(cluster=gpus).changed
    assert sum(v for k, v in gpu_inventory_refresh(cluster=gpus).calls.items() if k.startswith("guest")) == 0

    results = parallel([(operator, vm_body(f"burst-{i}", four_q.pk)) for i in range(10)], VM_URL)
    accepted = [body for status, body in results if status == 202]
    refused = [body for status, body in results if status != 202]
    assert len(accepted) == 3, results[:3]
    assert len(refused) == 7 and all(set(b["errors"]) == {"gpu_profile"} for b in refused), refused[:2]
    assert all("no free A16 4Q vGPU on pve2 (4 of 4 held)" in b["errors"]["gpu_profile"][0] or
               "no node has a free A16 4Q vGPU" in b["errors"]["gpu_profile"][0] for b in refused), refused[:2]
    held = GpuAllocation.objects.filter(profile=four_q)
    assert held.count() == 4 and {a.operation_id for a in held if a.vmid != 103} == {
        Operation.objects.get(pk=b["id"]).pk for b in accepted}
    assert free_by_node(four_q) == {"pve2": 0}


def test_two_attaches_never_get_the_same_passthrough_card(gpus, no_worker, operator):
    whole = profile(gpus, operator, preset="l40s")
    results = parallel([(operator, vm_body(f"train-{i}", whole.pk, memory=4096)) for i in range(6)], VM_URL)
    accepted = [body for status, body in results if status == 202]
    assert len(accepted) == 2, results
    cards = [a.device.pci_id for a in GpuAllocation.objects.filter(profile=whole)]
    assert sorted(cards) == ["0000:41:00.0", "0000:c1:00.0"]  # one guest per card
    assert all(set(b["errors"]) == {"gpu_profile"} for status, b in results if status != 202)


def test_gpu_quota_per_profile_per_tenant(gpus, no_worker, operator, django_user_model):
    acme = Tenant.objects.create(name="ACME", slug="acme")
    TenantPool.objects.create(tenant=acme, cluster=gpus, pool="acme")
    sync(gpus)
    member = django_user_model.objects.create_user(username="acme-member", password="tenant-pass-1234")
    Membership.objects.create(user=member, tenant=acme, role="member")
    four_q = profile(gpus, operator, preset="a16-4q", tenants=[acme.pk])
    whole = profile(gpus, operator, preset="l40s")  # not offered to acme
    Quota.objects.create(tenant=acme, resource=f"gpu:{four_q.pk}", limit=1)
    as_member = Api(member)
    as_member.post(VM_URL, vm_body("acme-vdi-1", four_q.pk), expect=202)
    errors = as_member.post(VM_URL, vm_body("acme-vdi-2", four_q.pk), expect=400)["errors"]
    assert errors["gpu_profile"][0].startswith(f"quota 'GPUs ({four_q.pk})' of tenant acme exceeded by 1")
    assert GpuAllocation.objects.filter(profile=four_q, tenant=acme).count() == 1  # the refused one left nothing
    errors = as_member.post(VM_URL, vm_body("acme-big", whole.pk), expect=400)["errors"]
    assert errors["gpu_profile"] == [f"no GPU profile {whole.pk} is offered to you"]


def test_attach_and_detach_on_a_stopped_vm(gpus, celery_worker, api, operator, pve):
    four_q = profile(gpus, operator, preset="a16-4q")
    wait_task(pve, pve.post("nodes/pve2/qemu", vmid=780, name="render-01", memory=2048, cores=2,
                            scsi0="ceph-rbd:8"))
    sync(gpus)
    guest = Guest.objects.get(cluster=gpus, vmid=780)
    op = api.post("/api/v1/gpu-allocations/attach/", {"guest": guest.pk, "gpu_profile": four_q.pk}, expect=202)
    assert op["kind"] == "gpu.attach"
    wait_done(op["id"], "succeeded")
    config = pve.get("nodes/pve2/qemu/780/config")
    assert config["hostpci0"] == "mapping=vgpu-a16,mdev=nvidia-747,pcie=1" and config["machine"] == "q35"
    allocation = GpuAllocation.objects.get(vmid=780)
    assert allocation.state == "active" and allocation.slots == "hostpci0"
    # The same profile twice on one guest is refused; so is a running guest.
    errors = api.post("/api/v1/gpu-allocations/attach/", {"guest": guest.pk, "gpu_profile": four_q.pk},
                      expect=400)["errors"]
    assert errors["gpu_profile"] == ["guest 780 already has a A16 4Q vGPU"]
    running = Guest.objects.get(cluster=gpus, vmid=101)
    errors = api.post("/api/v1/gpu-allocations/attach/", {"guest": running.pk, "gpu_profile": four_q.pk},
                      expect=400)["errors"]
    assert "stop it to add a GPU" in errors["gpu_profile"][0]

    op = api.post(f"/api/v1/gpu-allocations/{allocation.pk}/detach/", expect=202)
    wait_done(op["id"], "succeeded")
    assert "hostpci0" not in pve.get("nodes/pve2/qemu/780/config")
    assert not GpuAllocation.objects.filter(vmid=780).exists()
    assert free_by_node(four_q) == {"pve2": 4}


def test_a_refused_start_names_the_guest_holding_the_card(gpus, celery_worker, api, operator, pve):
    """The demo's VM 102 runs with the first L40S, given outside the portal and never read by it
    (its config is unknown, so nothing was adopted): Proxmox refuses the second holder's start."""
    one = profile(gpus, operator, preset="l40s-one")
    op = api.post(VM_URL, vm_body("train-01", one.pk), expect=202)
    wait_done(op["id"], "succeeded")
    guest = Guest.objects.get(cluster=gpus, name="train-01")
    start = api.post(f"/api/v1/guests/{guest.pk}/start/", expect=202)
    failed = wait_done(start["id"], "failed")
    assert "its GPU 0000:41:00.0 is held by VM 102; stop VM 102" in failed.error, failed.error
    assert "Proxmox said: PCI device '0000:41:00.0' already in use by VMID '102'" in failed.error


def test_an_approved_create_takes_its_gpu_when_approved(gpus, no_worker, operator, django_user_model):
    """A tenant create above its approval size waits without a card; approving takes one (and the
    tenant's GPU quota) in the approval's transaction, or refuses naming the profile."""
    acme = Tenant.objects.create(name="ACME", slug="acme", approval_above_memory=1024**3)
    TenantPool.objects.create(tenant=acme, cluster=gpus, pool="acme")
    sync(gpus)
    member = django_user_model.objects.create_user(username="acme-member", password="tenant-pass-1234")
    Membership.objects.create(user=member, tenant=acme, role="member")
    whole = profile(gpus, operator, preset="l40s-one", tenants=[acme.pk])
    waiting = [Api(member).post(VM_URL, vm_body(f"big-{i}", whole.pk), expect=202)["approval_request"]
               for i in range(2)]
    assert not GpuAllocation.objects.exists()
    approved = Api(operator).post(f"/api/v1/approvals/{waiting[0]['id']}/approve/", {}, expect=202)
    allocation = GpuAllocation.objects.get()
    assert (str(allocation.operation_id), allocation.tenant_id) == (approved["id"], acme.pk)
    errors = Api(operator).post(f"/api/v1/approvals/{waiting[1]['id']}/approve/", {}, expect=400)["errors"]
    assert errors["gpu_profile"][0].startswith("no free L40S one card on pve1")
    assert GpuAllocation.objects.count() == 1


def test_a_moved_guest_takes_its_allocation_to_a_card_on_its_new_node(gpus):
    """VM 101 runs on pve2 while its allocation names a pve1 card (as after a migration): the sync
    moves the allocation to the profile's free card on pve2, freeing the pve1 card."""
    l40s = GpuDevice.objects.filter(cluster=gpus, node__name="pve1").first()
    a16 = GpuDevice.objects.get(cluster=gpus, node__name="pve2")
    both = GpuProfile.objects.create(cluster=gpus, name="any card", kind="passthrough", mapping_id="any")
    both.devices.set([l40s, a16])
    GpuAllocation.objects.create(profile=both, device=l40s, cluster=gpus, vmid=101, exclusive=True, state="active")
    sync(gpus)
    assert GpuAllocation.objects.get(vmid=101).device == a16
    assert free_by_node(both) == {"pve1": 1, "pve2": 0}
