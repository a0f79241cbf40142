"""The audit log as CSV, streamed: the page's Export button and GET /api/v1/audit/export/.

Both take the list's queryset (scoped by the selector, narrowed by AuditEntryFilterSet), so an
export holds exactly what the caller sees with the same filters. Rows are written as the database
database hands them over, a batch at a time (never the whole log in memory). Cells a spreadsheet would run as a formula (starting with
= + - @, a tab or a carriage return) are prefixed with a quote (OWASP's CSV injection advice)."""

from __future__ import annotations

import csv
import json

from asgiref.sync import sync_to_async
from django.db.models import Q
from django.http import StreamingHttpResponse
from django.utils import timezone

COLUMNS = ["when", "user", "token", "tenant_id", "action", "object_type", "object_id", "object", "result",
           "address", "detail"]
FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")


def safe_cell(value) -> str:
    """`value` as a CSV cell no spreadsheet evaluates."""
    text = "" if value is None else str(value)
    return "'" + text if text.startswith(FORMULA_PREFIXES) else text


def _row(entry) -> list[str]:
    detail = json.dumps(entry.detail, sort_keys=True, default=str) if entry.detail else ""
    values = [entry.created.isoformat(), entry.username, entry.token, entry.tenant_id, entry.action,
              entry.target_type, entry.target_id, entry.target_repr, entry.result, entry.remote_addr, detail]
    return [safe_cell(v) for v in values]


class _Echo:
    """csv.writer's file: hands each written line back instead of keeping it."""

    def write(self, value: str) -> str:
        return value


BATCH = 1000


def _batch(queryset, after) -> list:
    """The next BATCH entries, newest first, after the (created, id) `after` (keyset: no offset)."""
    if after is not None:
        queryset = queryset.filter(Q(created__lt=after[0]) | Q(created=after[0], id__lt=after[1]))
    return list(queryset.order_by("-created", "-id")[:BATCH])


def csv_lines(queryset):
    writer = csv.writer(_Echo())
    yield writer.writerow(COLUMNS)
    after = None
    while True:
        rows = _batch(queryset, after)
        for entry in rows:
            yield writer.writerow(_row(entry))
        if len(rows) < BATCH:
            return
        after = (rows[-1].created, rows[-1].pk)


async def acsv_lines(queryset):
    """csv_lines for an ASGI server (Django would read a synchronous iterator whole first)."""
    writer = csv.writer(_Echo())
    yield writer.writerow(COLUMNS)
    after = None
    while True:
        rows = await sync_to_async(_batch)(queryset, after)
        for entry in rows:
            yield writer.writerow(_row(entry))
        if len(rows) < BATCH:
            return
        after = (rows[-1].created, rows[-1].pk)


def csv_response(queryset, request) -> StreamingHttpResponse:
    """The CSV of `queryset` (already scoped and filtered), streamed in batches."""
    from django.core.handlers.asgi import ASGIRequest

    queryset = queryset.select_related(None)
    lines = acsv_lines(queryset) if isinstance(getattr(request, "_request", request), ASGIRequest) \
        else csv_lines(queryset)
    response = StreamingHttpResponse(lines, content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="audit-{timezone.now():%Y%m%d-%H%M%S}.csv"'
    response["Cache-Control"] = "no-store"
    return response
