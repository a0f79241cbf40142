"""Generic views every app's views.py builds on, plus core's own pages, /healthz and /metrics.

An app's list view is a few lines:

    class GuestListView(ObjectListView):
        selector = guest_list              # (*, user) -> scoped QuerySet
        table_class = GuestTable
        filterset_class = GuestFilterSet
        live_groups = ["guests-all"]       # optional: websocket groups this page listens to
"""

from __future__ import annotations

import hmac

from django.conf import settings
from django.contrib.auth.decorators import login_not_required
from django.contrib.auth.mixins import LoginRequiredMixin
from django.core.paginator import Paginator
from django.http import HttpResponse, JsonResponse
from django.utils.cache import patch_vary_headers
from django.views import View
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET
from django.views.generic import DetailView, TemplateView
from django_filters.views import FilterView
from django_tables2 import SingleTableMixin

from . import health, metrics
from .filtersets import AuditEntryFilterSet
from .scoping import can
from .selectors import audit_entry_list
from .tables import AuditEntryTable


def is_partial(request) -> bool:
    """An htmx request that wants a fragment (boosted navigation wants the whole page)."""
    htmx = getattr(request, "htmx", None)
    return bool(htmx) and not htmx.boosted


class HtmxPartialMixin:
    """Renders `partial_template_name` for htmx requests; the response varies on HX-Request so
    caches never serve a fragment for a full page (or the reverse)."""

    partial_template_name: str | None = None

    def get_partial_template_names(self) -> list[str]:
        return [self.partial_template_name] if self.partial_template_name else []

    def get_template_names(self):
        if is_partial(self.request):
            names = self.get_partial_template_names()
            if names:
                return names
        return super().get_template_names()

    def dispatch(self, request, *args, **kwargs):
        response = super().dispatch(request, *args, **kwargs)
        patch_vary_headers(response, ("HX-Request",))
        return response


class ScopedQuerysetMixin:
    """`selector` (*, user) -> QuerySet scoped to the user; objects outside it are 404."""

    selector = None
    live_groups: list[str] = []

    def get_queryset(self):
        selector = type(self).selector
        if selector is None:
            raise NotImplementedError(f"{type(self).__name__} must set `selector`")
        return selector(user=self.request.user)

    def get_live_groups(self) -> list[str]:
        return list(self.live_groups)

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        context.setdefault("live_groups", self.get_live_groups())
        return context


class CappedPaginator(Paginator):
    """?per_page= between 1 and 500 (as the API's page_size): ?per_page=100000 rendered every row."""

    max_per_page = 500

    def __init__(self, object_list, per_page, *args, **kwargs):
        super().__init__(object_list, min(max(int(per_page), 1), self.max_per_page), *args, **kwargs)


class ObjectListView(LoginRequiredMixin, HtmxPartialMixin, ScopedQuerysetMixin, SingleTableMixin, FilterView):
    """Table + FilterSet + pagination over a selector. Full page: `<app>/<model>_list.html`
    (falls back to generic/object_list.html); htmx: `<app>/partials/<model>_table.html` (falls
    back to htmx/table.html)."""

    # The table paginates (?page=, ?per_page=); ListView's own pagination is off: it counted the rows
    # a second time and answered 404 for a page past its own 50-row pages (?per_page=10&page=300).
    paginate_by = None
    table_pagination = {"per_page": 50, "paginator_class": CappedPaginator}
    title: str | None = None
    add_url_name: str | None = None  # shows an "Add" button when set

    def _names(self):
        meta = self.get_queryset().model._meta
        return meta.app_label, meta.model_name

    def get_template_names(self):
        app, model = self._names()
        if is_partial(self.request):
            return [f"{app}/partials/{model}_table.html", "htmx/table.html"]
        return [f"{app}/{model}_list.html", "generic/object_list.html"]

    def get_table_data(self):
        """The rows with only the fields the table's rows read (RowsTable.row_fields), joined to only
        the relations those name."""
        data = super().get_table_data()
        fields = getattr(self.get_table_class(), "row_fields", ())
        if not fields or not hasattr(data, "only"):
            return data
        related = sorted({name.rsplit("__", 1)[0] for name in fields if "__" in name})
        return data.select_related(None).select_related(*related).only(*fields)

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        meta = self.get_queryset().model._meta
        context.setdefault("title", self.title or str(meta.verbose_name_plural).capitalize())
        context.setdefault("add_url_name", self.add_url_name)
        return context


class ObjectDetailView(LoginRequiredMixin, HtmxPartialMixin, ScopedQuerysetMixin, DetailView):
    """One object from a selector (404 outside the user's scope), template `<app>/<model>.html`."""

    def get_template_names(self):
        if is_partial(self.request) and self.partial_template_name:
            return [self.partial_template_name]
        meta = self.object._meta
        return [f"{meta.app_label}/{meta.model_name}.html", "generic/object_detail.html"]


class DashboardView(LoginRequiredMixin, TemplateView):
    template_name = "core/dashboard.html"

    def get_context_data(self, **kwargs):
        # The user's own group: notifications pushed with live.push(f"user-{id}", html=...).
        return super().get_context_data(live_groups=[f"user-{self.request.user.pk}"], **kwargs)


class AuditEntryListView(ObjectListView):
    selector = audit_entry_list
    table_class = AuditEntryTable
    filterset_class = AuditEntryFilterSet
    title = "Audit log"


class AuditEntryExportView(LoginRequiredMixin, View):
    """The audit log as CSV: what the list shows the user, with the list's filters (streamed)."""

    def get(self, request):
        from .audit_export import csv_response

        filterset = AuditEntryFilterSet(request.GET, queryset=audit_entry_list(user=request.user), request=request)
        if not filterset.is_valid():
            errors = "; ".join(f"{field}: {' '.join(msgs)}" for field, msgs in filterset.errors.items())
            return HttpResponse(f"Invalid filter: {errors}\n", status=400, content_type="text/plain; charset=utf-8")
        return csv_response(filterset.qs, request)


class AuditEntryView(ObjectDetailView):
    selector = audit_entry_list

    def get_context_data(self, **kwargs):
        from apps.operations.models import Operation

        from .tables import operation_id, result_html

        context = super().get_context_data(**kwargs)
        op_id = operation_id(self.object)
        operation = Operation.objects.filter(pk=op_id).first() if op_id else None
        context["result_html"] = result_html(self.object, operation)
        return context


@login_not_required
@never_cache
@require_GET
def healthz(request):
    """200 when the database, Redis and at least one Celery worker answer, else 503: public.
    What failed and why (exception texts, worker names) only for operators or the monitoring token."""
    ok, checks = health.run_checks()
    if not _monitoring_allowed(request):
        checks = {name: {"ok": check["ok"]} for name, check in checks.items()}
    return JsonResponse({"status": "ok" if ok else "fail", "checks": checks}, status=200 if ok else 503)


def _bearer_matches(request, token: str) -> bool:
    supplied = request.headers.get("Authorization", "").removeprefix("Bearer ").strip()
    return bool(token) and hmac.compare_digest(supplied.encode(), token.encode())


def _monitoring_allowed(request) -> bool:
    """An operator's or auditor's session (policy `monitoring.view`), or `Authorization: Bearer
    <METRICS_TOKEN>` from a scraper."""
    user = getattr(request, "user", None)
    return bool(user is not None and user.is_authenticated and can(user, "monitoring.view")) or \
        _bearer_matches(request, settings.METRICS_TOKEN)


@login_not_required
@never_cache
@require_GET
def metrics_view(request):
    """Prometheus text format, for METRICS_TOKEN's bearer or an operator; open to all only with
    METRICS_PUBLIC=1 (the operator's explicit choice)."""
    if not (settings.METRICS_PUBLIC or _monitoring_allowed(request)):
        hint = ("send Authorization: Bearer <METRICS_TOKEN>" if settings.METRICS_TOKEN
                else "set METRICS_TOKEN and send it as a Bearer token, or METRICS_PUBLIC=1 to open /metrics")
        response = HttpResponse(f"metrics token required: {hint}\n", status=401, content_type="text/plain")
        response["WWW-Authenticate"] = 'Bearer realm="metrics"'
        return response
    return HttpResponse(metrics.render(), content_type="text/plain; version=0.0.4; charset=utf-8")
