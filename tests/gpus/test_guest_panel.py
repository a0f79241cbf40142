"""The guest page's GPU panel and its actions (UI): add a profile to a stopped VM (the progress panel
out of band), refusals on the form's field, removal only once given, a profile in use is not
deleted, another tenant's guest is 404."""

from __future__ import annotations

import pytest
from django.test import Client

from apps.gpus import profiles
from apps.gpus.models import GpuAllocation, GpuDevice, GpuProfile
from apps.guests.models import Guest
from apps.permissions.models import Membership, Tenant, TenantPool

from tests.fixtures import gpu_inventory, sync, wait_task

pytestmark = pytest.mark.django_db

HTMX = {"HTTP_HX_REQUEST": "true"}


@pytest.fixture
def stopped_vm(sim_cluster, pve, operator):
    """VM 781 (stopped, on pve2 beside the A16) and the A16 4Q profile."""
    gpu_inventory(sim_cluster)  # waits out a refresh the worker may be running
    wait_task(pve, pve.post("nodes/pve2/qemu", vmid=781, name="cad-01", memory=2048, scsi0="ceph-rbd:8"))
    sync(sim_cluster)
    a16 = GpuDevice.objects.get(cluster=sim_cluster, node__name="pve2")
    profile = profiles.gpu_profile_save(user=operator, cluster=sim_cluster, data={
        "name": "A16 4Q vGPU", "kind": "mdev", "mdev_type": "nvidia-747", "devices": [a16.pk],
        "mapping_id": "vgpu-a16"})
    return Guest.objects.get(cluster=sim_cluster, vmid=781), profile


def test_add_a_gpu_from_the_guest_page(stopped_vm, client, no_worker):
    guest, profile = stopped_vm
    page = client.get(f"/guests/{guest.pk}/").content.decode()
    assert f'id="guest-gpus-{guest.pk}"' in page and "No GPU." in page
    assert "A16 4Q vGPU — 4 free on pve2" in page

    response = client.post(f"/gpus/guests/{guest.pk}/attach/", {"gpu_profile": profile.pk}, **HTMX)
    html = response.content.decode()
    assert response.status_code == 200 and 'id="guest-operation" hx-swap-oob="true"' in html
    assert "Add GPU A16 4Q vGPU to VM 781 (cad-01)" in html
    allocation = GpuAllocation.objects.get(vmid=781)
    assert allocation.state == "reserved" and allocation.device.node.name == "pve2"
    page = client.get(f"/guests/{guest.pk}/").content.decode()
    assert "A16 4Q vGPU" in page and "Reserved" in page

    # Twice, or before it is given: the reason on the form, nothing queued.
    html = client.post(f"/gpus/guests/{guest.pk}/attach/", {"gpu_profile": profile.pk}, **HTMX).content.decode()
    assert "guest 781 already has a A16 4Q vGPU" in html
    html = client.post(f"/gpus/allocations/{allocation.pk}/detach/", **HTMX).content.decode()
    assert "still being given to the guest" in html
    # A profile guests hold is not deleted.
    response = client.post(f"/gpus/profiles/{profile.pk}/delete/", follow=True)
    assert "1 guest(s) hold GPUs of A16 4Q vGPU" in response.content.decode()
    assert GpuProfile.objects.filter(pk=profile.pk).exists()


def test_a_running_guest_is_told_to_stop_first(stopped_vm, client, no_worker):
    _, profile = stopped_vm
    running = Guest.objects.get(cluster=profile.cluster, vmid=101)
    html = client.post(f"/gpus/guests/{running.pk}/attach/", {"gpu_profile": profile.pk}, **HTMX).content.decode()
    assert "is running; stop it to add a GPU" in html
    assert not GpuAllocation.objects.exists()


def test_another_tenants_guest_is_not_found(stopped_vm, django_user_model, no_worker):
    guest, profile = stopped_vm
    acme = Tenant.objects.create(name="ACME", slug="acme")
    TenantPool.objects.create(tenant=acme, cluster=profile.cluster, pool="acme")
    sync(profile.cluster)
    member = django_user_model.objects.create_user(username="acme-member", password="tenant-pass-1234")
    Membership.objects.create(user=member, tenant=acme, role="member")
    profile.tenants.set([acme])
    client = Client()
    client.force_login(member)
    globex_guest = Guest.objects.filter(cluster=profile.cluster, pool="globex").first()
    assert client.post(f"/gpus/guests/{globex_guest.pk}/attach/", {"gpu_profile": profile.pk}).status_code == 404
    assert client.post(f"/gpus/guests/{guest.pk}/attach/", {"gpu_profile": profile.pk}).status_code == 404
    assert not GpuAllocation.objects.exists()
