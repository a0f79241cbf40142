"""The guest's backups page, back up now / restore / delete dialogs (UI), with `urlpatterns`."""

from __future__ import annotations

from django import forms
from django.contrib.auth.mixins import LoginRequiredMixin
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import Http404
from django.shortcuts import redirect
from django.urls import path
from django.views import View

from apps.core.views import is_partial
from apps.operations.live import progress_context
from apps.operations.models import Operation
from apps.proxmox import ProxmoxError
from apps.storage.models import StorageContent

from ...models import Guest
from ...selectors import guest_backups
from ..backup_jobs.services import backup_job_list
from ..backup_jobs.validation import COMPRESSIONS, MODES
from ..common import audit, guest_or_404, partial
from .services import backup_delete, guest_backup, guest_restore
from .validation import _disk_storages, _messages, backup_storages


class BackupForm(forms.Form):
    storage = forms.ChoiceField(label="Backup storage")
    mode = forms.ChoiceField(choices=MODES, initial="snapshot")
    compress = forms.ChoiceField(label="Compression", choices=COMPRESSIONS, initial="zstd")
    notes = forms.CharField(required=False, max_length=1024, help_text="Shown beside the backup, e.g. {{guestname}}.")
    protected = forms.BooleanField(required=False, help_text="Protected backups are never pruned or deleted.")

    def __init__(self, *args, guest: Guest, **kwargs):
        super().__init__(*args, **kwargs)
        names = sorted({s.storage for s in backup_storages(guest=guest)})
        self.fields["storage"].choices = [(n, n) for n in names]


class RestoreForm(forms.Form):
    target = forms.ChoiceField(choices=[("new", "As a new guest (next free vmid, new MAC addresses)"),
                                        ("same", "Over this guest (replaces its disks and configuration)")],
                               initial="new", widget=forms.RadioSelect)
    storage = forms.ChoiceField(required=False, label="Disk storage")
    start = forms.BooleanField(required=False, label="Start after restore")

    def __init__(self, *args, guest: Guest, **kwargs):
        super().__init__(*args, **kwargs)
        names = sorted({s.storage for s in _disk_storages(guest)})
        self.fields["storage"].choices = [("", "Where the disks were")] + [(n, n) for n in names]


def _backup_or_404(request, guest: Guest, backup_pk) -> StorageContent:
    backup = guest_backups(user=request.user, guest=guest).filter(pk=backup_pk).first()
    if backup is None:
        raise Http404("No such backup of this guest.")
    return backup


def _started(request, operation: Operation, guest: Guest):
    if not is_partial(request):
        return redirect(operation.get_absolute_url())
    return partial(request, "guests/backups/partials/started.html", {"guest": guest, **progress_context(operation)})


class GuestBackupsView(LoginRequiredMixin, View):
    """The guest's backups page: list (from the synced content), back up now, restore, delete."""

    def get(self, request, pk):
        guest = guest_or_404(request, pk)
        backups = list(guest_backups(user=request.user, guest=guest))
        jobs = [j for j in backup_job_list(user=request.user).filter(cluster_id=guest.cluster_id)
                if j.selection == "all" or guest.vmid in j.vmids or (j.selection == "pool" and j.pool == guest.pool)]
        return partial(request, "guests/backups/backups.html", {
            "guest": guest, "object": guest, "backups": backups, "jobs": jobs,
            "live_groups": [f"cluster-{guest.cluster_id}"]})


class GuestBackupView(LoginRequiredMixin, View):
    """GET: the back-up-now dialog; POST: queue it and answer the live progress panel."""

    def get(self, request, pk):
        guest = guest_or_404(request, pk)
        return partial(request, "guests/backups/partials/backup_dialog.html",
                       {"guest": guest, "form": BackupForm(guest=guest)})

    def post(self, request, pk):
        guest = guest_or_404(request, pk)
        form = BackupForm(request.POST, guest=guest)
        error = ""
        if form.is_valid():
            try:
                operation = guest_backup(guest=guest, user=request.user, **form.cleaned_data)
            except (ValidationError, PermissionDenied) as exc:
                error = _messages(exc) if isinstance(exc, ValidationError) else str(exc)
            else:
                audit(request, "guests.guest_backup", guest, operation)
                return _started(request, operation, guest)
        return partial(request, "guests/backups/partials/backup_dialog.html",
                       {"guest": guest, "form": form, "error": error})


class GuestRestoreView(LoginRequiredMixin, View):
    """GET: the restore dialog for one backup; POST: queue the restore (progress panel)."""

    def get(self, request, pk, backup_pk):
        guest = guest_or_404(request, pk)
        backup = _backup_or_404(request, guest, backup_pk)
        return partial(request, "guests/backups/partials/restore_dialog.html",
                       {"guest": guest, "backup": backup, "form": RestoreForm(guest=guest)})

    def post(self, request, pk, backup_pk):
        guest = guest_or_404(request, pk)
        backup = _backup_or_404(request, guest, backup_pk)
        form = RestoreForm(request.POST, guest=guest)
        error = ""
        if form.is_valid():
            try:
                operation = guest_restore(guest=guest, user=request.user, backup=backup, **form.cleaned_data)
            except ValidationError as exc:
                error = _messages(exc)
            except PermissionDenied as exc:
                error = str(exc)
            except ProxmoxError as exc:
                error = f"Could not reserve a vmid. Proxmox said: {exc}"
            else:
                audit(request, "guests.guest_restore", guest, operation, volid=backup.volid)
                return _started(request, operation, guest)
        return partial(request, "guests/backups/partials/restore_dialog.html",
                       {"guest": guest, "backup": backup, "form": form, "error": error})


class GuestBackupDeleteView(LoginRequiredMixin, View):
    """POST: delete one backup of the guest (progress panel)."""

    def post(self, request, pk, backup_pk):
        guest = guest_or_404(request, pk)
        backup = _backup_or_404(request, guest, backup_pk)
        try:
            operation = backup_delete(backup=backup, user=request.user, guest=guest)
        except (ValidationError, PermissionDenied) as exc:
            error = _messages(exc) if isinstance(exc, ValidationError) else str(exc)
            return partial(request, "guests/partials/guest_action_error.html", {"error": error})
        audit(request, "guests.backup_delete", guest, operation, volid=backup.volid)
        return _started(request, operation, guest)


urlpatterns = [
    path("guests/<int:pk>/backups/", GuestBackupsView.as_view(), name="guest_backups"),
    path("guests/<int:pk>/backup/", GuestBackupView.as_view(), name="guest_backup"),
    path("guests/<int:pk>/backups/<int:backup_pk>/restore/", GuestRestoreView.as_view(), name="guest_restore"),
    path("guests/<int:pk>/backups/<int:backup_pk>/delete/", GuestBackupDeleteView.as_view(), name="backup_delete"),
]
