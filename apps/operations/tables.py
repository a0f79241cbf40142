import django_tables2 as tables

from .models import Operation


class OperationTable(tables.Table):
    title = tables.Column(linkify=True, verbose_name="Operation", accessor="title", order_by=("title", "kind"))
    status = tables.TemplateColumn(
        '<span class="badge badge-{{ record.status }}">{{ record.get_status_display }}</span>'
        '{% if record.is_active %} {{ record.progress }}%{% endif %}'
    )
    target_repr = tables.Column(verbose_name="Target")
    created_by = tables.Column(verbose_name="By", accessor="created_by__username", default="—")
    created = tables.DateTimeColumn(format="Y-m-d H:i:s")
    finished = tables.DateTimeColumn(format="Y-m-d H:i:s", default="—")

    class Meta:
        model = Operation
        fields = ["title", "kind", "target_repr", "status", "created_by", "created", "finished"]
        order_by = "-created"
        empty_text = "No operations match."

    def render_title(self, record, value):
        return value or str(record)
