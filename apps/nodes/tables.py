import django_tables2 as tables

from apps.core.rendering import pk_url, text
from apps.core.tables import RowsTable

from .models import Cluster, Node
from .templatetags.nodes_ui import duration_h, usage_bar

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
    pve_version = tables.Column(verbose_name="Proxmox version")

    class Meta:
        model = Cluster
        fields = ["name", "api_url", "pve_version", "status", "quorate", "nodes", "cpu", "memory", "last_sync_at"]
        order_by = "name"
        empty_text = "No cluster registered yet."
        row_attrs = {"id": lambda record: f"cluster-row-{record.pk}"}


_NODE_STATUS = {value: str(label) for value, label in Node._meta.get_field("status").choices}


class NodeTable(RowsTable):
    """Header, sorting and pagination; rows from `node_row_html` (these columns, in this order), which
    the sync pushes too when a node changes."""

    row_fields = ("name", "status", "cpu", "mem", "maxmem", "disk", "maxdisk", "booted_at", "ha_state",
                  "pve_version", "ip", "cluster__name")

    name = tables.Column()
    cluster = tables.Column()
    status = tables.Column()
    cpu = tables.Column(verbose_name="CPU")
    mem = tables.Column(verbose_name="Memory")
    disk = tables.Column(verbose_name="Root disk")
    uptime = tables.Column(order_by="booted_at", verbose_name="Uptime")
    ha_state = tables.Column(verbose_name="HA")
    pve_version = tables.Column(verbose_name="PVE")
    ip = tables.Column(verbose_name="IP address")

    class Meta:
        model = Node
        fields = ["name", "cluster", "status", "cpu", "mem", "disk", "uptime", "ha_state", "pve_version", "ip"]
        order_by = ("cluster", "name")
        empty_text = "No nodes match."

    def row_html(self, record, parity):
        return node_row_html(record, parity=parity)


def node_row_html(node: Node, *, parity: str = "", oob: bool = False) -> str:
    """One row of the nodes table; `oob`: as an out-of-band fragment for a live push."""
    attrs = ' hx-swap-oob="true"' if oob else f' class="{parity}"'
    status = node.status
    return (
        f'<tr id="node-row-{node.pk}"{attrs}>'
        f'<td><a href="{pk_url("nodes:node", node.pk)}">{text(node.name)}</a></td>'
        f'<td><a href="{pk_url("nodes:cluster", node.cluster_id)}">{text(node.cluster.name)}</a></td>'
        f'<td><span class="badge badge-{text(status)}">{text(_NODE_STATUS.get(status, status))}</span></td>'
        f"<td>{usage_bar(node.cpu_percent)}</td>"
        f"<td>{usage_bar(node.mem_percent)}</td>"
        f"<td>{usage_bar(node.disk_percent)}</td>"
        f"<td>{duration_h(node.uptime)}</td>"
        f'<td>{text(node.ha_state) or "—"}</td>'
        f'<td>{text(node.pve_version) or "—"}</td>'
        f'<td>{text(node.ip) or "—"}</td>'
        "</tr>\n"
    )


def render_node_row(node: Node) -> str:
    """The node's table row as an out-of-band fragment (same columns as the list page)."""
    return node_row_html(node, oob=True)
