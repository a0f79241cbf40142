"""Guest pages: list with filters, detail with details block, action and bulk responses."""

import re

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


def test_list_rows(sim_cluster, client):
    """Rows are written whole (apps.guests.html.row_html): selection box, links, the status and node
    partials live pushes replace, escaped values; sorting and pages as the table says."""
    vm = Guest.objects.select_related("node").get(cluster=sim_cluster, vmid=100)
    Guest.objects.filter(pk=vm.pk).update(tags=["<b>x</b>"], lock="backup", hastate="started")
    html = client.get("/guests/?sort=-vmid").content.decode()
    assert (f'<input type="checkbox" name="ids" value="{vm.pk}" form="guest-bulk-form" aria-label="Select {vm}" '
            f'data-confirm-label="VM {vm}">') in html
    assert f'<a href="/guests/{vm.pk}/">100</a>' in html
    assert f'<span id="guest-{vm.pk}-node" class="guest-node"><a href="/nodes/{vm.node_id}/">{vm.node.name}</a></span>' in html
    status = html.split(f'<span id="guest-{vm.pk}-status" class="guest-status">', 1)[1].split("</td>", 1)[0]
    assert "badge-running" in status or "badge-stopped" in status
    assert "🔒 backup" in status and "HA started" in status
    assert "&lt;b&gt;x&lt;/b&gt;" in html and "<b>x</b>" not in html
    vmids = [int(v) for v in re.findall(r'<td><a href="/guests/\d+/">(\d+)</a></td>', html)]
    assert vmids == sorted(vmids, reverse=True) and len(vmids) == Guest.objects.count()
    assert client.get("/guests/?q=no-such-guest").content.decode().count("No guests match.") == 1


def test_list_pages(sim_cluster, client):
    count = Guest.objects.count()
    # The table's pages only: a page past ListView's own 50-row pages was a 404.
    html = client.get(f"/guests/?per_page=1&page={count}").content.decode()
    assert f"{count}–{count} of {count}" in html and html.count('name="ids"') == 1
    assert client.get("/guests/?per_page=100000").content.decode().count('name="ids"') == count  # capped at 500


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
