import json

from django.contrib.auth.mixins import LoginRequiredMixin
from django.shortcuts import render
from django.utils.cache import patch_vary_headers
from django.views import View

from apps.core.models import AuditResult
from apps.core.services import audit_log
from apps.core.units import MIB
from apps.core.views import ObjectDetailView, ObjectListView
from apps.operations.selectors import operation_list

from . import config as guest_config
from . import services
from .actions.base import GuestActionView
from .actions.common import guest_or_404
from .choices import GuestType, PowerAction
from .filtersets import GuestFilterSet
from .forms import GuestBulkPowerForm, GuestPowerForm
from .selectors import guest_backups, guest_list
from .tables import GuestTable


def _partial(request, template, context):
    response = render(request, template, context)
    patch_vary_headers(response, ("HX-Request",))
    return response


class GuestListView(ObjectListView):
    selector = guest_list
    table_class = GuestTable
    filterset_class = GuestFilterSet
    title = "Guests"

    def get_live_groups(self):
        ids = self.get_queryset().values_list("cluster_id", flat=True).distinct().order_by()
        return [f"cluster-{pk}" for pk in ids]

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        context["power_actions"] = PowerAction.choices
        return context


def chart_specs(rrd: dict | None) -> dict:
    """uPlot specs for the guest page: CPU %, memory %, network and disk I/O over the last hour."""
    points = [p for p in (rrd or {}).get("points", []) if p.get("time")]
    if not points:
        return {}
    x = [int(p["time"]) for p in points]

    def col(key, scale=1.0, digits=2):
        return [round(p[key] * scale, digits) if p.get(key) is not None else None for p in points]

    mem = [round(100.0 * p["mem"] / p["maxmem"], 2) if p.get("mem") is not None and p.get("maxmem") else None
           for p in points]
    return {
        "usage": {"labels": ["CPU %", "Memory %"], "x": x, "series": [col("cpu", 100.0), mem]},
        "network": {"labels": ["in MiB/s", "out MiB/s"], "x": x,
                    "series": [col("netin", 1 / MIB, 3), col("netout", 1 / MIB, 3)]},
        "disk": {"labels": ["read MiB/s", "write MiB/s"], "x": x,
                 "series": [col("diskread", 1 / MIB, 3), col("diskwrite", 1 / MIB, 3)]},
    }


def details_context(request, guest) -> dict:
    """Everything the details block shows, from the database and the cache (never Proxmox)."""
    charts = chart_specs(services.cached_rrd(guest.pk))
    return {
        "guest": guest,
        "summary": guest_config.summary(guest.config or {}),
        "disks": guest_config.disks(guest.config or {}, guest.type),
        "networks": guest_config.networks(guest.config or {}, guest.type),
        "snapshots": list(guest.snapshots.all()),
        "backups": list(guest_backups(user=request.user, guest=guest)[:50]),
        "charts": {k: json.dumps(v) for k, v in charts.items()},
        "operations": list(operation_list(user=request.user).filter(
            target_type="guests.guest", target_id=str(guest.pk))[:10]),
    }


class GuestDetailView(ObjectDetailView):
    selector = guest_list

    def get_queryset(self):
        return super().get_queryset().defer(None)  # the detail page shows config and task history

    def get_live_groups(self):
        return [f"cluster-{self.object.cluster_id}", f"guest-{self.object.pk}"]

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        context.update(details_context(self.request, self.object))
        context["catch_up"] = services.guest_refresh_if_stale(guest=self.object)
        context["power_actions"] = [(a, label) for a, label in PowerAction.choices
                                    if not (a == PowerAction.RESET and self.object.type == GuestType.LXC)]
        return context


class GuestDetailsView(LoginRequiredMixin, View):
    """GET: the details block alone (reloaded when fresh details were pushed)."""

    def get(self, request, pk):
        return _partial(request, "guests/partials/guest_details.html",
                        details_context(request, guest_or_404(request, pk)))


class GuestPowerView(GuestActionView):
    """POST action=<start|shutdown|...>: queue it, answer the operation's progress partial; an
    action that cannot be queued answers the reason in the same place."""

    form_class = GuestPowerForm

    def get_form_kwargs(self):
        return {}

    def get_audit_action(self, form):
        return f"guests.guest_{form.cleaned_data['action']}"

    def perform(self, form):
        return services.guest_power(guest=self.object, user=self.request.user, action=form.cleaned_data["action"],
                                    timeout=form.cleaned_data["timeout"])


class GuestBulkPowerView(LoginRequiredMixin, View):
    """POST ids=<pk>&ids=...&action=: one operation per selected guest; answers each guest's result."""

    def post(self, request):
        guests = list(guest_list(user=request.user).filter(pk__in=[
            int(i) for i in request.POST.getlist("ids") if i.isdigit()]))
        form = GuestBulkPowerForm(request.POST, guests=guests)
        if not form.is_valid():
            error = "; ".join(f"{k}: {m}" for k, msgs in form.errors.items() for m in msgs)
            return _partial(request, "guests/partials/guest_action_error.html", {"error": error})
        action = form.cleaned_data["action"]
        chosen = [g for g in guests if g.pk in set(form.cleaned_data["ids"])]
        results = services.guest_bulk_power(guests=chosen, user=request.user, action=action,
                                            timeout=form.cleaned_data["timeout"])
        for r in results:
            audit_log(user=request.user, action=f"guests.guest_{action}", target=r["guest"],
                      result=AuditResult.ACCEPTED if r["operation"] else AuditResult.FAILURE, request=request,
                      detail={"operation": str(r["operation"].pk) if r["operation"] else None, "error": r["error"]})
        return _partial(request, "guests/partials/guest_bulk_results.html",
                        {"results": results, "action": PowerAction(action).label})
