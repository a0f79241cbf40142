"""Sizes are shown in binary units (KiB, MiB, GiB, TiB) as Proxmox does, through one filter, and
guest summaries read as words ("OS type: Linux 2.6+ kernel", "Memory: 8.0 GiB")."""

import re
from pathlib import Path

import pytest
from django.template import Context, Template
from django.utils import timezone

from apps.core.units import binary_size
from tests.fixtures import pve, sim_cluster  # noqa: F401  (fixtures)

ROOT = Path(__file__).resolve().parents[2]
DECIMAL_UNITS = re.compile(r"\d (kB|KB|MB|GB|TB|PB)\b")


@pytest.mark.parametrize("value, text", [
    (0, "0 B"), (512, "512 B"), (1024, "1.0 KiB"), (8192 * 1024**2, "8.0 GiB"), (1536 * 1024**3, "1.5 TiB"),
    (25728008634368, "23.4 TiB"), ("4096", "4.0 KiB"), (None, "—"), ("", "—"), ("abc", "—"),
])
def test_binary_size(value, text):
    assert binary_size(value) == text


def test_the_filter_is_a_builtin_for_every_template():
    rendered = Template("{{ a|bytes_h }} · {{ a|of_h:b }}").render(Context({"a": 1024**3, "b": 4 * 1024**4}))
    assert rendered == "1.0 GiB · 1.0 GiB / 4.0 TiB"


def test_no_other_size_formatting_in_templates_code_or_scripts():
    """Django's filesizeformat says "TB" for TiB; a second formatter drifts. One filter only."""
    offenders = []
    for pattern in ("templates/**/*.html", "apps/**/*.py", "static/js/*.js"):
        for path in ROOT.glob(pattern):
            text = path.read_text()
            if "filesizeformat" in text or re.search(r"\bMB/s\b|/ 1e6|1e-6", text):
                offenders.append(str(path.relative_to(ROOT)))
    assert offenders == []


@pytest.mark.django_db
def test_guest_and_storage_pages_use_binary_units(client, sim_cluster):  # noqa: F811
    from apps.guests.models import Guest
    from apps.storage.models import Storage

    guest = Guest.objects.filter(cluster=sim_cluster, type="qemu").order_by("vmid").first()
    guest.config = {"ostype": "l26", "memory": 8192, "cores": 4, "onboot": 1, "scsihw": "virtio-scsi-single",
                    "boot": "order=scsi0;net0", "scsi0": "ceph:vm-100-disk-0,iothread=1,size=32G"}
    guest.details_synced_at = timezone.now()
    guest.save()
    page = client.get(guest.get_absolute_url()).content.decode()
    for text in ("<dt>OS type</dt><dd>Linux 2.6+ kernel</dd>", "<dt>Memory</dt><dd>8.0 GiB</dd>",
                 "<dt>CPU cores</dt><dd>4</dd>", "<dt>Start at boot</dt><dd>yes</dd>",
                 "<dt>SCSI controller</dt><dd>VirtIO SCSI single</dd>", "<dt>Boot order</dt><dd>scsi0, net0</dd>",
                 "<td>32.0 GiB</td>"):
        assert text in page
    assert ">ostype<" not in page and ">l26<" not in page
    assert not DECIMAL_UNITS.search(page)

    listing = client.get("/guests/").content.decode()
    assert "GiB" in listing and not DECIMAL_UNITS.search(listing)
    storage = Storage.objects.filter(cluster=sim_cluster, maxdisk__gt=0).first()
    page = client.get(storage.get_absolute_url()).content.decode()
    assert "iB of " in page and not DECIMAL_UNITS.search(page)


def test_table_headers_are_written_for_a_person():
    """No header that reads like a field name ('Pve version', 'Ip', 'Target repr')."""
    import django_tables2 as tables

    from apps.core.tables import AuditEntryTable
    from apps.nodes.tables import ClusterTable, NodeTable
    from apps.operations.tables import OperationTable

    for table_class in (AuditEntryTable, ClusterTable, NodeTable, OperationTable):
        table: tables.Table = table_class([])
        headers = [str(column.header) for column in table.columns]
        assert not [h for h in headers if h in {"Pve version", "Ip", "Target repr", "Remote addr", "Username"}], headers
