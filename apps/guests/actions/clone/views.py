"""Clone, template and delete forms and views (UI), with `urlpatterns`."""

from __future__ import annotations

from django import forms
from django.contrib.auth.mixins import LoginRequiredMixin
from django.core.exceptions import ValidationError
from django.shortcuts import render
from django.urls import path
from django.views import View

from ...models import Guest
from ..base import GuestActionView
from ..common import guest_or_404
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


class GuestClonePageView(LoginRequiredMixin, View):
    def get(self, request, pk):
        guest = guest_or_404(request, pk)
        return render(request, "guests/clone/clone.html", _context(guest))


class GuestCloneView(GuestActionView):
    """POST: clone; answers the form (errors) or the form + progress panel (oob)."""

    http_method_names = ["post", "options"]
    form_class = CloneForm
    template_name = success_template_name = "guests/clone/clone_form.html"
    form_context_name, progress_oob = "clone_form", True
    service_error_fields = {"full": "mode"}
    audit_action = "guests.guest_clone"

    def perform(self, form):
        return guest_clone(guest=self.object, user=self.request.user, **form.service_kwargs())

    def get_success_context(self, form, result):
        from apps.approvals.models import ApprovalRequest

        if isinstance(result, ApprovalRequest):  # waits for an operator: the form and where to follow the request
            return self.get_context_data(approval=result, **{self.form_context_name: form})
        return super().get_success_context(form, result)


class GuestTemplateView(GuestActionView):
    success_template_name = "guests/config/operation.html"
    audit_action = "guests.guest_template"

    def perform(self, form):
        return guest_template(guest=self.object, user=self.request.user)


class GuestDeleteView(GuestActionView):
    http_method_names = ["post", "options"]
    form_class = DeleteForm
    template_name = success_template_name = "guests/clone/delete_form.html"
    form_context_name, error_context_name, progress_oob = "delete_form", "refused", True
    audit_action, audit_fields = "guests.guest_delete", ("purge",)

    def get_context_data(self, **kwargs):
        return super().get_context_data(protected=str((self.object.config or {}).get("protection", "0")) == "1",
                                        **kwargs)

    def perform(self, form):
        return guest_delete(guest=self.object, user=self.request.user, purge=form.cleaned_data["purge"],
                            destroy_unreferenced_disks=form.cleaned_data["destroy_unreferenced_disks"])


urlpatterns = [
    path("guests/<int:pk>/clone/", GuestClonePageView.as_view(), name="guest_clone"),
    path("guests/<int:pk>/clone/run/", GuestCloneView.as_view(), name="guest_clone_run"),
    path("guests/<int:pk>/template/", GuestTemplateView.as_view(), name="guest_template"),
    path("guests/<int:pk>/delete/", GuestDeleteView.as_view(), name="guest_delete"),
]
