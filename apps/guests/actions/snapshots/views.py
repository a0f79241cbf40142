"""The snapshot page, its actions and the live tree fragment (UI), with `urlpatterns`."""

from __future__ import annotations

from django import forms
from django.contrib.auth.mixins import LoginRequiredMixin
from django.shortcuts import render
from django.urls import path
from django.views import View

from ...choices import GuestType
from ...models import Guest
from ..base import GuestActionView
from ..common import guest_or_404, partial
from .selectors import snapshot_tree_context
from .services import guest_snapshot_create, guest_snapshot_delete, guest_snapshot_rollback
from .worker import snapshots_refresh_if_stale


class SnapshotForm(forms.Form):
    name = forms.CharField(max_length=40, help_text="Letters, digits, _ and -; starts with a letter.")
    description = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 2}))
    vmstate = forms.BooleanField(required=False, label="Include RAM (running VMs)")

    def __init__(self, *args, guest: Guest, **kwargs):
        super().__init__(*args, **kwargs)
        if guest.type != GuestType.QEMU:
            del self.fields["vmstate"]
        else:
            self.fields["vmstate"].disabled = not guest.is_running
            if not guest.is_running:
                self.fields["vmstate"].help_text = "The VM is stopped: only its disks are saved."


def _page_context(request, guest: Guest, form=None) -> dict:
    return {"guest": guest, "object": guest, "form": form or SnapshotForm(guest=guest),
            "live_groups": [f"cluster-{guest.cluster_id}", f"guest-{guest.pk}"], **snapshot_tree_context(guest)}


class GuestSnapshotsView(GuestActionView):
    """GET: the snapshot page (take form, live tree). POST: take a snapshot; answers the form
    (fresh, or with errors) and the progress panel out of band."""

    form_class = SnapshotForm
    template_name = success_template_name = "guests/snapshots/take_form.html"
    progress_oob = True
    audit_action, audit_fields = "guests.snapshot_create", ("name",)

    def get(self, request, pk):
        guest = guest_or_404(request, pk)
        context = _page_context(request, guest)
        context["catch_up"] = snapshots_refresh_if_stale(guest)
        return render(request, "guests/snapshots/snapshots.html", context)

    def get_success_context(self, form, result):
        return super().get_success_context(self.get_form(), result)  # a fresh form for the next one

    def perform(self, form):
        return guest_snapshot_create(guest=self.object, user=self.request.user, **form.cleaned_data)


class GuestSnapshotActionView(GuestActionView):
    """POST /guests/<pk>/snapshots/<name>/<rollback|delete>/: queue it; answers the progress panel."""

    services = {"rollback": guest_snapshot_rollback, "delete": guest_snapshot_delete}
    success_template_name = "guests/config/operation.html"
    audit_fields = ("name",)

    def get_audit_action(self, form):
        return f"guests.snapshot_{self.kwargs['action']}"

    def perform(self, form):
        return self.services[self.kwargs["action"]](guest=self.object, user=self.request.user, name=self.kwargs["name"])


class GuestSnapshotTreeView(LoginRequiredMixin, View):
    """GET: the tree alone (for a reconnecting page)."""

    def get(self, request, pk):
        guest = guest_or_404(request, pk)
        return partial(request, "guests/snapshots/tree.html", snapshot_tree_context(guest))


urlpatterns = [
    path("guests/<int:pk>/snapshots/", GuestSnapshotsView.as_view(), name="guest_snapshots"),
    path("guests/<int:pk>/snapshots/tree/", GuestSnapshotTreeView.as_view(), name="guest_snapshot_tree"),
    path("guests/<int:pk>/snapshots/<str:name>/rollback/", GuestSnapshotActionView.as_view(),
         {"action": "rollback"}, name="guest_snapshot_rollback"),
    path("guests/<int:pk>/snapshots/<str:name>/delete/", GuestSnapshotActionView.as_view(),
         {"action": "delete"}, name="guest_snapshot_delete"),
]
