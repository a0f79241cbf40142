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
from django.http import HttpResponse, JsonResponse
from django.utils.cache import patch_vary_headers
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET
from django.views.generic import DetailView, TemplateView
from django_filters.views import FilterView
from django_tables2 import SingleTableMixin

from . import health, metrics
from .filtersets import AuditEntryFilterSet
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


class ObjectListView(LoginRequiredMixin, HtmxPartialMixin, ScopedQuerysetMixin, SingleTableMixin, FilterView):
    """Table + FilterSet + pagination over a selector. Full page: `<app>/<model>_list.html`
    (falls back to generic/object_list.html); htmx: `<app>/partials/<model>_table.html` (falls
    back to htmx/table.html)."""

    paginate_by = 50
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


class AuditEntryView(ObjectDetailView):
    selector = audit_entry_list


@login_not_required
@never_cache
@require_GET
def healthz(request):
    """200 when the database, Redis and at least one Celery worker answer; 503 naming what failed."""
    ok, checks = health.run_checks()
    return JsonResponse({"status": "ok" if ok else "fail", "checks": checks}, status=200 if ok else 503)


@login_not_required
@never_cache
@require_GET
def metrics_view(request):
    """Prometheus text format. Open unless METRICS_TOKEN is set (then a Bearer token is required)."""
    if settings.METRICS_TOKEN:
        supplied = request.headers.get("Authorization", "").removeprefix("Bearer ").strip()
        if not hmac.compare_digest(supplied.encode(), settings.METRICS_TOKEN.encode()):
            return HttpResponse("metrics token required\n", status=401, content_type="text/plain")
    return HttpResponse(metrics.render(), content_type="text/plain; version=0.0.4; charset=utf-8")
