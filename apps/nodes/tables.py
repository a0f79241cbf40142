import django_tables2 as tables
from django.template.loader import render_to_string

from .models import Cluster, Node

BAR = '{% load nodes_ui %}{% usage_bar record.PCT %}'


class ClusterTable(tables.Table):
    name = tables.Column(linkify=True)
    status = tables.TemplateColumn(template_name="nodes/partials/cluster_status_badge.html", order_by="status")
    quorate = tables.TemplateColumn(
        '{% if record.quorate is None %}<span class="muted">—</span>{% elif record.quorate %}'
        '<span class="badge badge-ok">quorate</span>{% else %}<span class="badge badge-error">no quorum</span>{% endif %}')
    nodes = tables.TemplateColumn('{{ record.nodes_online }} / {{ record.node_count }}', verbose_name="Nodes online",
                                  order_by="nodes_online")
    cpu = tables.TemplateColumn(BAR.replace("PCT", "cpu_percent"), verbose_name="CPU", order_by="cpu_used")
    memory = tables.TemplateColumn(BAR.replace("PCT", "mem_percent"), verbose_name="Memory", order_by="mem_used")
    last_sync_at = tables.TemplateColumn('{% load nodes_ui %}{% age record.last_sync_at %}', verbose_name="Synced")

    class Meta:
        model = Cluster
        fields = ["name", "api_url", "pve_version", "status", "quorate", "nodes", "cpu", "memory", "last_sync_at"]
        order_by = "name"
        empty_text = "No cluster registered yet."
        row_attrs = {"id": lambda record: f"cluster-row-{record.pk}"}


class NodeTable(tables.Table):
    name = tables.Column(linkify=True)
    cluster = tables.Column(linkify=True)
    status = tables.TemplateColumn('<span class="badge badge-{{ record.status }}">{{ record.get_status_display }}</span>')
    cpu = tables.TemplateColumn('{% load nodes_ui %}{% usage_bar record.cpu_percent %}',
                                verbose_name="CPU")
    mem = tables.TemplateColumn('{% load nodes_ui %}{% usage_bar record.mem_percent %}',
                                verbose_name="Memory")
    disk = tables.TemplateColumn('{% load nodes_ui %}{% usage_bar record.disk_percent %}',
                                 verbose_name="Root disk")
    uptime = tables.TemplateColumn('{% load nodes_ui %}{{ record.uptime|duration_h }}', order_by="booted_at",
                                   verbose_name="Uptime")
    ha_state = tables.TemplateColumn('{{ record.ha_state|default:"—" }}', verbose_name="HA")

    class Meta:
        model = Node
        fields = ["name", "cluster", "status", "cpu", "mem", "disk", "uptime", "ha_state", "ip"]
        order_by = ("cluster", "name")
        empty_text = "No nodes match."
        row_attrs = {"id": lambda record: f"node-row-{record.pk}"}


def render_node_row(node: Node) -> str:
    """The node's table row as an out-of-band fragment (same columns as the list page)."""
    table = NodeTable([node], orderable=False)
    return render_to_string("nodes/partials/node_row.html", {"row": table.rows[0], "node": node})
