import django_tables2 as tables

from apps.core.tables import RowsTable

from .html import row_html
from .models import Guest


class GuestTable(RowsTable):
    """Header, sorting and pagination; each row is apps.guests.html.row_html (these columns, in this
    order), whose status and node cells are what live pushes replace."""

    row_fields = ("vmid", "type", "name", "status", "template", "lock", "hastate", "pool", "tags", "maxcpu",
                  "maxmem", "maxdisk", "cluster__name", "node__name")

    select = tables.Column(empty_values=(), orderable=False, verbose_name="", attrs={"th": {"class": "select"}})
    vmid = tables.Column(verbose_name="VMID")
    name = tables.Column()
    type = tables.Column()
    status = tables.Column(order_by=("status",))
    node = tables.Column(verbose_name="Node", order_by=("node__name",))
    cluster = tables.Column(accessor="cluster__name", verbose_name="Cluster", order_by=("cluster__name",))
    pool = tables.Column()
    tags = tables.Column(orderable=False)
    maxcpu = tables.Column(verbose_name="vCPU")
    maxmem = tables.Column(verbose_name="Memory")
    maxdisk = tables.Column(verbose_name="Disk")

    class Meta:
        model = Guest
        fields = ["select", "vmid", "name", "type", "status", "node", "cluster", "pool", "tags", "maxcpu",
                  "maxmem", "maxdisk"]
        order_by = "vmid"
        empty_text = "No guests match."

    def row_html(self, record, parity):
        return row_html(record, parity)
