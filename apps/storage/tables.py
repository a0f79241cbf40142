import django_tables2 as tables

from .models import Storage, StorageContent


class StorageTable(tables.Table):
    storage = tables.Column(linkify=True, verbose_name="Storage")
    cluster = tables.Column(accessor="cluster__name", verbose_name="Cluster")
    node = tables.Column(accessor="node__name", verbose_name="Node", default="shared",
                         order_by=("node__name",))
    type = tables.Column()
    content = tables.TemplateColumn(
        "{% for c in record.content %}<span class=\"badge\">{{ c }}</span> {% endfor %}", orderable=False)
    status = tables.TemplateColumn('<span class="badge badge-{{ value }}">{{ record.get_status_display }}</span>')
    usage = tables.TemplateColumn('{% include "storage/partials/storage_usage.html" with storage=record %}',
                                  order_by=("maxdisk",), verbose_name="Usage", attrs={"td": {"class": "usage-cell"}})

    class Meta:
        model = Storage
        fields = ["storage", "cluster", "node", "type", "content", "status", "usage"]
        order_by = "storage"
        empty_text = "No storage yet: it appears after the first sync of a cluster."


class StorageContentTable(tables.Table):
    volid = tables.Column(verbose_name="Volume")
    content = tables.Column()
    size = tables.TemplateColumn("{{ value|bytes_h }}")
    format = tables.Column()
    vmid = tables.Column(verbose_name="VMID", default="")
    ctime = tables.DateTimeColumn(format="Y-m-d H:i", verbose_name="Created")
    notes = tables.Column(default="")

    class Meta:
        model = StorageContent
        fields = ["volid", "content", "size", "format", "vmid", "ctime", "notes"]
        order_by = "volid"
        empty_text = "Nothing stored."
