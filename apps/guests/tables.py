import django_tables2 as tables

from .models import Guest


class GuestTable(tables.Table):
    select = tables.TemplateColumn(
        '<input type="checkbox" name="ids" value="{{ record.pk }}" form="guest-bulk-form" aria-label="Select {{ record }}">',
        orderable=False, verbose_name="", attrs={"th": {"class": "select"}})
    vmid = tables.Column(verbose_name="VMID", linkify=True)
    name = tables.Column(linkify=True, default="—")
    type = tables.Column()
    status = tables.TemplateColumn('{% include "guests/partials/guest_status.html" with guest=record %}',
                                   order_by=("status",))
    node = tables.Column(accessor="node__name", verbose_name="Node", default="—", order_by=("node__name",))
    cluster = tables.Column(accessor="cluster__name", verbose_name="Cluster", order_by=("cluster__name",))
    pool = tables.Column(default="")
    tags = tables.TemplateColumn("{% for t in record.tags %}<span class=\"badge tag\">{{ t }}</span> {% endfor %}",
                                 orderable=False)
    maxcpu = tables.Column(verbose_name="vCPU")
    maxmem = tables.TemplateColumn("{{ value|filesizeformat }}", verbose_name="Memory")
    maxdisk = tables.TemplateColumn("{{ value|filesizeformat }}", verbose_name="Disk")

    class Meta:
        model = Guest
        fields = ["select", "vmid", "name", "type", "status", "node", "cluster", "pool", "tags", "maxcpu",
                  "maxmem", "maxdisk"]
        order_by = "vmid"
        empty_text = "No guests match."
