"""Table rendering at the cost of its rows, not of their templates.

The big lists (guests, nodes, operations, audit) write their rows in Python (apps.core.tables.
RowsTable): `pk_url` gives each row's link from one `reverse()` per view, `text` and
`local_datetime` write a cell as a template would. The tables still rendered by django-tables2 cell
by cell (clusters, storage, GPUs...) keep the patch below.

django-tables2 repeats two pieces of per-column work for every cell: TemplateColumn compiles
`Template(template_code)` again (100 rows x 4 such columns = 400 parses per guests page), and
`call_with_appropriate` asks `inspect.signature` of the render function (twice per cell). Both
answers depend on the column only: a compiled Django template is immutable and safe to render from
many threads (the cached template loader shares them the same way), and a function's signature does
not change, so each is computed once per process.
"""
from __future__ import annotations

import uuid
from functools import lru_cache
from html import escape


def compile_template_columns_once() -> None:
    from django.template import Template
    from django_tables2 import utils
    from django_tables2.columns import templatecolumn

    if getattr(templatecolumn.Template, "cache_info", None) is None:
        templatecolumn.Template = lru_cache(maxsize=1024)(Template)
    if getattr(utils.signature, "uncached", None) is None:
        uncached = utils.signature
        by_function = lru_cache(maxsize=4096)(uncached)

        def signature(fn):
            func = getattr(fn, "__func__", None)  # a bound method: the same answer for every instance
            try:
                return by_function(fn) if func is None else _bound(func)
            except TypeError:  # unhashable callable
                return uncached(fn)

        @lru_cache(maxsize=4096)
        def _bound(func):
            args, keywords = uncached(func)
            return args[1:], keywords  # without self, as inspect.signature of the bound method

        signature.uncached = uncached
        utils.signature = signature


# --- Row URLs from one reverse() per view ------------------------------------------------------

# What stands for the pk in the one reverse() of each view name: an int (<int:pk>) or a UUID (<uuid:pk>).
_PK_MARKS = {int: 987654321987654321, uuid.UUID: uuid.UUID("9e7a1c3b-5d2f-4e6a-8b0c-1d2e3f4a5b6c")}


@lru_cache(maxsize=512)
def _pk_url_parts(view_name: str, kind: type, prefix: str, urlconf) -> tuple[str, str] | None:
    from django.urls import reverse

    mark = str(_PK_MARKS[kind])
    head, found, tail = reverse(view_name, urlconf=urlconf, kwargs={"pk": _PK_MARKS[kind]}).partition(mark)
    return (head, tail) if found and mark not in tail else None


def pk_url(view_name: str, pk) -> str:
    """`reverse(view_name, kwargs={"pk": pk})` for an int or UUID pk, at the cost of an f-string: the
    URL is reversed once per view name (and script prefix) with a marker where the pk goes, and each
    row's URL is that with its pk in place. A list page links every row (guest, node, operation...),
    and a `reverse()` per row was a visible share of it. Other pks take the ordinary path."""
    from django.urls import get_script_prefix, get_urlconf, reverse

    kind = type(pk)
    if kind in _PK_MARKS:
        parts = _pk_url_parts(view_name, kind, get_script_prefix(), get_urlconf())
        if parts is not None:
            return f"{parts[0]}{pk}{parts[1]}"
    return reverse(view_name, kwargs={"pk": pk})


# --- Cells written in Python (apps.core.tables.RowsTable.row_html) -------------------------------


def text(value) -> str:
    """A value as a template shows it: escaped (Django's autoescape is html.escape), None as ""."""
    return escape(str(value)) if value is not None else ""


def local_datetime(value, fmt: str = "%Y-%m-%d %H:%M:%S", default: str = "—") -> str:
    """`{{ value|date:"Y-m-d H:i:s"|default:"—" }}`: in the current time zone, as the `date` filter."""
    if value is None:
        return default
    from django.utils import timezone

    return (timezone.localtime(value) if timezone.is_aware(value) else value).strftime(fmt)
