"""The migrate dialog / page (UI), with `urlpatterns`."""

from __future__ import annotations

from django import forms
from django.contrib.auth.mixins import LoginRequiredMixin
from django.core.exceptions import PermissionDenied, ValidationError
from django.shortcuts import redirect
from django.urls import path
from django.views import View

from apps.core.models import AuditResult
from apps.core.views import is_partial
from apps.operations.live import progress_context
from apps.proxmox import ProxmoxError

from ... import services
from ..common import audit, guest_or_404, partial
from .plans import migrate_plan
from .services import guest_migrate


class MigrateForm(forms.Form):
    target = forms.CharField(max_length=100, error_messages={"required": "choose the node to migrate to"})


def _field_errors(exc: ValidationError) -> str:
    return "; ".join(m for msgs in exc.message_dict.values() for m in msgs)


class GuestMigrateView(LoginRequiredMixin, View):
    """GET: the migrate dialog (targets from Proxmox's precheck); POST target=<node>: queue it and
    answer the operation's live progress panel (htmx) or redirect to the operation page."""

    def _dialog(self, request, guest, *, error: str = "", selected: str = "", status: int = 200):
        plan, plan_error = None, ""
        try:
            plan = migrate_plan(guest=guest, user=request.user)
        except PermissionDenied as exc:
            plan_error = str(exc)
        except ValidationError as exc:
            plan_error = _field_errors(exc)
        except ProxmoxError as exc:
            plan_error = services.explain_error("migrate", guest, exc).replace("Could not migrate",
                                                                               "Cannot migrate", 1)
        template = "guests/migrate/partials/migrate_dialog.html" if is_partial(request) else \
            "guests/migrate/migrate.html"
        status = 200 if is_partial(request) else status  # htmx swaps only 2xx answers
        return partial(request, template, {"guest": guest, "object": guest, "plan": plan, "plan_error": plan_error,
                                           "error": error, "selected": selected}, status)

    def get(self, request, pk):
        return self._dialog(request, guest_or_404(request, pk))

    def post(self, request, pk):
        guest = guest_or_404(request, pk)
        form = MigrateForm(request.POST)
        target = request.POST.get("target", "")
        try:
            if not form.is_valid():
                raise ValidationError({k: list(v) for k, v in form.errors.items()})
            operation = guest_migrate(guest=guest, user=request.user, target=form.cleaned_data["target"])
        except ValidationError as exc:
            return self._dialog(request, guest, error=_field_errors(exc), selected=target, status=400)
        except PermissionDenied as exc:
            audit(request, "guests.guest_migrate", guest, result=AuditResult.DENIED)
            return self._dialog(request, guest, error=str(exc), status=403)
        audit(request, "guests.guest_migrate", guest, operation, target=operation.task_kwargs["target"])
        if not is_partial(request):
            return redirect(operation.get_absolute_url())
        return partial(request, "guests/migrate/partials/migrate_started.html",
                       {"guest": guest, **progress_context(operation)})


urlpatterns = [
    path("guests/<int:pk>/migrate/", GuestMigrateView.as_view(), name="guest_migrate"),
]
