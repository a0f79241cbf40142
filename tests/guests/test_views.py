"""Guest pages: list with filters, detail with details block, action and bulk responses."""

import pytest

from apps.guests.models import Guest
from apps.guests.services import guest_refresh

pytestmark = pytest.mark.django_db


def test_list_page_filters(sim_cluster, client):
    html = client.get("/guests/?type=lxc").content.decode()
    assert "ct-" in html or "200" in html
    assert 'id="guest-bulk-form"' in html
    lxc_ids = set(Guest.objects.filter(type="lxc").values_list("pk", flat=True))
    qemu = Guest.objects.filter(type="qemu").first()
    assert f'id="guest-{qemu.pk}-status"' not in html
    missing = [pk for pk in lxc_ids if f"id=\"guest-{pk}-status\"" not in html]
    assert not missing, html[html.find("<table"):][:3000]


def test_detail_page_shows_config_disks_network_snapshots(sim_cluster, client):
    vm = Guest.objects.select_related("node").get(cluster=sim_cluster, vmid=100)
    guest_refresh(guest=vm)
    html = client.get(f"/guests/{vm.pk}/").content.decode()
    for part in ("Disks", "Network", "Snapshots", "Backups", "Proxmox task history", "Usage, last hour"):
        assert part in html
    vm.refresh_from_db()
    assert vm.config and vm.details_synced_at
    assert "scsi0" in html or "virtio0" in html
    assert "net0" in html


def test_power_view_errors_in_place(sim_cluster, client):
    ct = Guest.objects.get(cluster=sim_cluster, vmid=200)
    html = client.post(f"/guests/{ct.pk}/power/", {"action": "reset"}, HTTP_HX_REQUEST="true").content.decode()
    assert "containers cannot be reset" in html


def test_bulk_view_lists_each_result(sim_cluster, client):
    ct = Guest.objects.get(cluster=sim_cluster, vmid=200)
    html = client.post("/guests/bulk/", {"action": "reset", "ids": [ct.pk]}, HTTP_HX_REQUEST="true").content.decode()
    assert "containers cannot be reset" in html
    html = client.post("/guests/bulk/", {"action": "start"}, HTTP_HX_REQUEST="true").content.decode()
    assert "select at least one guest" in html
