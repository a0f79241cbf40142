import django_tables2 as tables

from .models import GpuDevice


class GpuDeviceTable(tables.Table):
    name = tables.Column(accessor="name", verbose_name="GPU", order_by=("subsystem_device_name", "device_name"))
    node = tables.Column(accessor="node__name", verbose_name="Node", order_by=("node__name", "pci_id"),
                         linkify=lambda record: record.node.get_absolute_url())
    cluster = tables.Column(accessor="cluster__name", verbose_name="Cluster")
    pci_id = tables.TemplateColumn('<code>{{ value }}</code>', verbose_name="PCI id")
    iommugroup = tables.Column(verbose_name="IOMMU")
    mode = tables.TemplateColumn('<span class="badge gpu-mode-{{ record.mode }}">{% if record.mdev_capable %}vGPU{% else %}Passthrough{% endif %}</span>',
                                 order_by=("mdev_capable",), verbose_name="Mode")
    mappings = tables.TemplateColumn(
        "{% for m in record.mappings.all %}<span class=\"badge tag\">{{ m.mapping_id }}</span> {% empty %}—{% endfor %}",
        orderable=False, verbose_name="Mapping")
    profiles = tables.TemplateColumn(
        "{% for t in record.mdev_types.all %}<span class=\"badge tag\" title=\"{{ t.name }} ({{ t.type }})\">{{ t.short_name }} "
        "<b>{{ t.available }}</b>{% if t.max_instances %}/{{ t.max_instances }}{% endif %}</span> "
        "{% empty %}—{% endfor %}", orderable=False, verbose_name="vGPU free")
    stale = tables.TemplateColumn('{% if value %}<span class="badge badge-unknown" title="node not answering">stale</span>'
                                  '{% else %}<span class="badge badge-ok">seen</span>{% endif %}', verbose_name="State")
    last_seen = tables.DateTimeColumn(format="Y-m-d H:i", verbose_name="Last seen")

    class Meta:
        model = GpuDevice
        fields = ["name", "node", "cluster", "pci_id", "iommugroup", "mode", "mappings", "profiles", "stale", "last_seen"]
        order_by = "node"
        empty_text = "No GPUs: they appear after the first inventory of a cluster."
