"""The migrate dialog / page (UI), with `urlpatterns`."""

from __future__ import annotations

from django import forms
from django.core.exceptions import PermissionDenied, ValidationError
from django.urls import path

from apps.core.actions import error_text
from apps.proxmox import ProxmoxError

from ... import services
from ..base import GuestActionView
from .plans import migrate_plan
from .services import guest_migrate


class MigrateForm(forms.Form):
    target = forms.CharField(max_length=100, error_messages={"required": "choose the node to migrate to"})


class GuestMigrateView(GuestActionView):
    """GET: the migrate dialog (targets from Proxmox's precheck); POST target=<node>: queue it and
    answer the operation's live progress panel (htmx) or redirect to the operation page."""

    form_class = MigrateForm
    template_name = "guests/migrate/partials/migrate_dialog.html"
    page_template_name = "guests/migrate/migrate.html"
    error_context_name, error_keys, service_errors_as_text = "error", False, True
    invalid_status, denied_status = 400, 403
    success_template_name = "guests/migrate/partials/migrate_started.html"
    redirect_full_page = True
    audit_action, audit_fields = "guests.guest_migrate", ("target",)

    def get_form_kwargs(self):
        return {}

    def get_context_data(self, **kwargs):
        if "operation" in kwargs:
            return super().get_context_data(**kwargs)
        guest, plan, plan_error = self.object, None, ""
        try:
            plan = migrate_plan(guest=guest, user=self.request.user)
        except PermissionDenied as exc:
            plan_error = str(exc)
        except ValidationError as exc:
            plan_error = error_text(exc, keys=False)
        except ProxmoxError as exc:
            plan_error = services.explain_error("migrate", guest, exc).replace("Could not migrate",
                                                                               "Cannot migrate", 1)
        return super().get_context_data(object=guest, plan=plan, plan_error=plan_error, **kwargs)

    def form_invalid(self, form, error="", status=None, **extra):
        # The dialog shows every reason in one line and keeps the node that was chosen.
        error = error or "; ".join(m for messages in form.errors.values() for m in messages)
        return super().form_invalid(form, error, status, selected=self.request.POST.get("target", ""), **extra)

    def perform(self, form):
        return guest_migrate(guest=self.object, user=self.request.user, target=form.cleaned_data["target"])


urlpatterns = [
    path("guests/<int:pk>/migrate/", GuestMigrateView.as_view(), name="guest_migrate"),
]
