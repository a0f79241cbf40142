import django_tables2 as tables

from apps.core.rendering import local_datetime, pk_url, text
from apps.core.tables import RowsTable

from .choices import ACTIVE_STATUSES
from .models import Operation

_STATUS_LABELS = {value: str(label) for value, label in Operation._meta.get_field("status").choices}


class OperationTable(RowsTable):
    """Header, sorting and pagination; rows from `row_html` (these columns, in this order)."""

    row_fields = ("title", "kind", "target_repr", "target_id", "status", "progress", "created_by__username",
                  "created", "finished")

    title = tables.Column(verbose_name="Operation", order_by=("title", "kind"))
    kind = tables.Column()
    target_repr = tables.Column(verbose_name="Target")
    status = tables.Column()
    created_by = tables.Column(verbose_name="By", accessor="created_by__username")
    created = tables.Column()
    finished = tables.Column()

    class Meta:
        model = Operation
        fields = ["title", "kind", "target_repr", "status", "created_by", "created", "finished"]
        order_by = "-created"
        empty_text = "No operations match."

    def row_html(self, record, parity):
        status = record.status
        progress = f" {record.progress}%" if status in ACTIVE_STATUSES else ""
        by = record.created_by.username if record.created_by_id is not None else ""
        return (
            f'<tr class="{parity}">'
            f'<td><a href="{pk_url("operations:operation", record.pk)}">{text(record.display_title)}</a></td>'
            f"<td>{text(record.kind_display)}</td>"
            f'<td>{text(record.target_repr) or "—"}</td>'
            f'<td><span class="badge badge-{text(status)}">{text(_STATUS_LABELS.get(status, status))}</span>{progress}</td>'
            f'<td>{text(by) or "—"}</td>'
            f"<td>{local_datetime(record.created)}</td>"
            f"<td>{local_datetime(record.finished)}</td>"
            "</tr>\n"
        )
