import uuid

import django_tables2 as tables
from django.utils.html import format_html
from django.utils.safestring import SafeString, mark_safe

from .models import AuditEntry, AuditResult
from .rendering import local_datetime, pk_url, text


class RowsTable(tables.Table):
    """A table that writes its body rows whole, in Python: `row_html(record, parity)` gives one
    `<tr>` ("even"/"odd" as django-tables2 classed them). django-tables2 keeps the header, sorting
    and pagination (generic/table.html).

    django-tables2 renders a body cell by cell: per cell an accessor walk, `call_with_appropriate`,
    the column's attrs, a `reverse()` for a linked cell, a template render for a TemplateColumn. On a
    page of 100 rows of a dozen columns that was most of the page's time (issue 11). The columns still
    declare the header (verbose name, order_by, th attrs); their cell settings are not used."""

    writes_rows = True
    # The fields the rows read ("cluster__name" for a related one), loaded with `.only()` by
    # ObjectListView: a guest with its cluster and node in full was ~80 columns, 11 of them datetimes
    # to parse, for a dozen cells. Empty: whole rows.
    row_fields: tuple[str, ...] = ()

    @property
    def page_records(self) -> list:
        """The records of the current page (all of them when the table is not paginated)."""
        rows = self.page.object_list if getattr(self, "page", None) is not None else self.rows
        return list(rows.data)

    def row_html(self, record, parity: str) -> str:
        """One `<tr>` of the columns in order, values escaped (apps.core.rendering.text)."""
        raise NotImplementedError

    @property
    def rows_html(self) -> SafeString:
        records = self.page_records
        if not records:
            return format_html('<tr><td class="empty" colspan="{}">{}</td></tr>', len(self.columns),
                               self.empty_text or "Nothing here yet.")
        return mark_safe("".join([self.row_html(record, "odd" if i % 2 else "even")
                                  for i, record in enumerate(records)]))


def operation_id(entry: AuditEntry) -> str | None:
    """The queued operation's id in an audit entry's detail, when it is a valid one."""
    value = entry.detail.get("operation") if isinstance(entry.detail, dict) else None
    try:
        return str(uuid.UUID(str(value))) if value else None
    except ValueError:
        return None


def result_html(entry: AuditEntry, operation=None):
    """The result badge; for an accepted request, the operation's own outcome beside it."""
    badge = format_html('<span class="badge badge-{}">{}</span>', entry.result, entry.get_result_display())
    if entry.result != AuditResult.ACCEPTED:
        return badge
    if operation is not None:
        return format_html('{} <a href="{}" title="the queued operation">then <span class="badge badge-{}">{}</span></a>',
                           badge, operation.get_absolute_url(), operation.status, operation.get_status_display())
    if (entry.detail or {}).get("operation"):
        return format_html('{} <span class="muted">(queued; the operation is no longer kept)</span>', badge)
    return format_html('{} <span class="muted">(queued)</span>', badge)


class AuditEntryTable(RowsTable):
    """Header, sorting and pagination; rows from `row_html` (these columns, in this order)."""

    row_fields = ("created", "username", "token", "action", "target_repr", "result", "remote_addr", "detail")

    created = tables.Column(verbose_name="When")
    username = tables.Column(verbose_name="User")
    action = tables.Column(verbose_name="Action")
    target_repr = tables.Column(verbose_name="Target")
    result = tables.Column(verbose_name="Result")
    remote_addr = tables.Column(verbose_name="From address")

    class Meta:
        model = AuditEntry
        fields = ["created", "username", "action", "target_repr", "result", "remote_addr"]
        order_by = "-created"
        empty_text = "No audit entries match."

    def row_html(self, record, parity):
        # Who: the user, and the API token when the request carried one. What: in words, the code beside
        # it (what the Action filter and the API take). "Accepted" alone says nothing: what became of
        # the queued operation.
        who = text(record.username) or "—"
        if record.token:
            who += f' <small class="muted">via token {text(record.token)}</small>'
        result = result_html(record, self._operations().get(operation_id(record) or ""))
        return (
            f'<tr class="{parity}">'
            f'<td><a href="{pk_url("core:auditentry", record.pk)}">{local_datetime(record.created)}</a></td>'
            f"<td>{who}</td>"
            f'<td>{text(record.action_display)} <small class="muted mono">{text(record.action)}</small></td>'
            f'<td>{text(record.target_repr) or "—"}</td>'
            f"<td>{result}</td>"
            f'<td>{text(record.remote_addr) or "—"}</td>'
            "</tr>\n"
        )

    def _operations(self) -> dict:
        # One query for the page's accepted entries, not one per row.
        if getattr(self, "_operation_cache", None) is None:
            from apps.operations.models import Operation

            ids = {op_id for record in self.page_records if (op_id := operation_id(record))}
            self._operation_cache = {str(op.pk): op for op in Operation.objects.filter(pk__in=ids)
                                     .only("status")} if ids else {}
        return self._operation_cache
