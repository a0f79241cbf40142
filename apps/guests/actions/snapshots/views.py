"""The snapshot page, its actions and the live tree fragment (UI), with `urlpatterns`."""

from __future__ import annotations

from django import forms
from django.contrib.auth.mixins import LoginRequiredMixin
from django.core.exceptions import PermissionDenied, ValidationError
from django.shortcuts import render
from django.urls import path
from django.views import View

from apps.core.models import AuditResult
from apps.operations.live import progress_context

from ...choices import GuestType
from ...models import Guest
from ..common import audit, error_text, guest_or_404, partial
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


class GuestSnapshotsView(LoginRequiredMixin, View):
    """GET: the snapshot page (take form, live tree). POST: take a snapshot; answers the form
    (fresh, or with errors) and the progress panel out of band."""

    def get(self, request, pk):
        guest = guest_or_404(request, pk)
        snapshots_refresh_if_stale(guest)
        return render(request, "guests/snapshots/snapshots.html", _page_context(request, guest))

    def post(self, request, pk):
        guest = guest_or_404(request, pk)
        form = SnapshotForm(request.POST, guest=guest)
        context = {"guest": guest, "form": form}
        if form.is_valid():
            try:
                operation = guest_snapshot_create(guest=guest, user=request.user, **form.cleaned_data)
            except ValidationError as exc:
                for key, messages in exc.message_dict.items():
                    for message in messages:
                        form.add_error(key if key in form.fields else None, message)
            except PermissionDenied as exc:
                audit(request, "guests.snapshot_create", guest, result=AuditResult.DENIED)
                form.add_error(None, str(exc))
            else:
                audit(request, "guests.snapshot_create", guest, operation, name=form.cleaned_data["name"])
                context = {"guest": guest, "form": SnapshotForm(guest=guest), "operation_oob": True,
                           **progress_context(operation)}
        return partial(request, "guests/snapshots/take_form.html", context)


class GuestSnapshotActionView(LoginRequiredMixin, View):
    """POST /guests/<pk>/snapshots/<name>/<rollback|delete>/: queue it; answers the progress panel."""

    services = {"rollback": guest_snapshot_rollback, "delete": guest_snapshot_delete}

    def post(self, request, pk, name, action):
        guest = guest_or_404(request, pk)
        service = self.services[action]
        try:
            operation = service(guest=guest, user=request.user, name=name)
        except ValidationError as exc:
            return partial(request, "guests/partials/guest_action_error.html", {"error": error_text(exc)})
        except PermissionDenied as exc:
            audit(request, f"guests.snapshot_{action}", guest, result=AuditResult.DENIED)
            return partial(request, "guests/partials/guest_action_error.html", {"error": str(exc)})
        audit(request, f"guests.snapshot_{action}", guest, operation, name=name)
        return partial(request, "guests/config/operation.html", progress_context(operation))


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
