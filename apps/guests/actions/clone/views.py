"""Clone, template and delete forms and views (UI), with `urlpatterns`."""

from __future__ import annotations

from django import forms
from django.contrib.auth.mixins import LoginRequiredMixin
from django.core.exceptions import PermissionDenied, ValidationError
from django.shortcuts import render
from django.urls import path
from django.views import View

from apps.core.models import AuditResult
from apps.operations.live import progress_context

from ...models import Guest
from ..common import ActionRefused, audit, error_text, guest_or_404, partial
from .services import guest_clone, guest_delete, guest_template
from .validation import node_names, storages_on


class CloneForm(forms.Form):
    name = forms.CharField(required=False, help_text="Empty: 'Copy-of-…' as Proxmox names it.")
    target = forms.ChoiceField(label="Target node")
    storage = forms.ChoiceField(label="Target storage", required=False)
    pool = forms.CharField(required=False)
    mode = forms.ChoiceField(label="Clone mode", choices=[("full", "Full copy"), ("linked", "Linked (templates only)")])
    newid = forms.IntegerField(label="VMID", required=False, help_text="Empty: the next free one, reserved for you.")

    def __init__(self, *args, guest: Guest, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["target"].choices = [(n, n) for n in node_names(guest)]
        self.fields["storage"].choices = [("", "same as source")] + [
            (s, s) for s in sorted({s for n in node_names(guest) for s in storages_on(guest, n)})]
        if not self.is_bound:
            self.initial = {"target": guest.node.name if guest.node_id else "", "pool": guest.pool,
                            "mode": "linked" if guest.template else "full"}

    def service_kwargs(self) -> dict:
        d = self.cleaned_data
        return {"name": d["name"], "target": d["target"], "storage": d["storage"], "pool": d["pool"],
                "full": d["mode"] == "full", "newid": d["newid"]}


class DeleteForm(forms.Form):
    confirm = forms.CharField(label="Type the VMID to confirm")
    purge = forms.BooleanField(required=False, label="Also remove it from HA, backup jobs and replication (purge)")
    destroy_unreferenced_disks = forms.BooleanField(required=False, label="Also destroy disks not in its config")

    def __init__(self, *args, guest: Guest, **kwargs):
        super().__init__(*args, **kwargs)
        self.guest = guest

    def clean_confirm(self):
        value = self.cleaned_data["confirm"].strip()
        if value != str(self.guest.vmid):
            raise ValidationError(f"type {self.guest.vmid} to confirm the deletion")
        return value


def _context(guest: Guest, **extra) -> dict:
    return {"guest": guest, "object": guest, "live_groups": [f"cluster-{guest.cluster_id}", f"guest-{guest.pk}"],
            "clone_form": extra.pop("clone_form", None) or CloneForm(guest=guest),
            "delete_form": extra.pop("delete_form", None) or DeleteForm(guest=guest),
            "protected": str((guest.config or {}).get("protection", "0")) == "1", **extra}


def _add_errors(form, exc: ValidationError) -> None:
    mapping = {"full": "mode"}
    for key, messages in exc.message_dict.items():
        name = mapping.get(key, key)
        for message in messages:
            form.add_error(name if name in form.fields else None, message)


class GuestClonePageView(LoginRequiredMixin, View):
    def get(self, request, pk):
        guest = guest_or_404(request, pk)
        return render(request, "guests/clone/clone.html", _context(guest))


class GuestCloneView(LoginRequiredMixin, View):
    """POST: clone; answers the form (errors) or the form + progress panel (oob)."""

    def post(self, request, pk):
        guest = guest_or_404(request, pk)
        form = CloneForm(request.POST, guest=guest)
        extra = {}
        if form.is_valid():
            try:
                operation = guest_clone(guest=guest, user=request.user, **form.service_kwargs())
            except ValidationError as exc:
                _add_errors(form, exc)
            except PermissionDenied as exc:
                audit(request, "guests.guest_clone", guest, result=AuditResult.DENIED)
                form.add_error(None, str(exc))
            else:
                audit(request, "guests.guest_clone", guest, operation)
                extra = {"operation_oob": True, **progress_context(operation)}
        return partial(request, "guests/clone/clone_form.html", {"guest": guest, "clone_form": form, **extra})


class GuestTemplateView(LoginRequiredMixin, View):
    def post(self, request, pk):
        guest = guest_or_404(request, pk)
        try:
            operation = guest_template(guest=guest, user=request.user)
        except (ValidationError, PermissionDenied) as exc:
            text = error_text(exc) if isinstance(exc, ValidationError) else str(exc)
            return partial(request, "guests/partials/guest_action_error.html", {"error": text})
        audit(request, "guests.guest_template", guest, operation)
        return partial(request, "guests/config/operation.html", progress_context(operation))


class GuestDeleteView(LoginRequiredMixin, View):
    def post(self, request, pk):
        guest = guest_or_404(request, pk)
        form = DeleteForm(request.POST, guest=guest)
        extra = {}
        if form.is_valid():
            try:
                operation = guest_delete(guest=guest, user=request.user, purge=form.cleaned_data["purge"],
                                         destroy_unreferenced_disks=form.cleaned_data["destroy_unreferenced_disks"])
            except ActionRefused as exc:
                audit(request, "guests.guest_delete", guest, result=AuditResult.FAILURE, error=exc.message)
                extra["refused"] = exc.message
            except PermissionDenied as exc:
                audit(request, "guests.guest_delete", guest, result=AuditResult.DENIED)
                extra["refused"] = str(exc)
            else:
                audit(request, "guests.guest_delete", guest, operation, purge=form.cleaned_data["purge"])
                extra = {"operation_oob": True, **progress_context(operation)}
        return partial(request, "guests/clone/delete_form.html", {
            "guest": guest, "delete_form": form, **extra,
            "protected": str((guest.config or {}).get("protection", "0")) == "1"})


urlpatterns = [
    path("guests/<int:pk>/clone/", GuestClonePageView.as_view(), name="guest_clone"),
    path("guests/<int:pk>/clone/run/", GuestCloneView.as_view(), name="guest_clone_run"),
    path("guests/<int:pk>/template/", GuestTemplateView.as_view(), name="guest_template"),
    path("guests/<int:pk>/delete/", GuestDeleteView.as_view(), name="guest_delete"),
]
