"""The guest's backups page, back up now / restore / delete dialogs (UI), with `urlpatterns`."""

from __future__ import annotations

from django import forms
from django.contrib.auth.mixins import LoginRequiredMixin
from django.core.exceptions import ValidationError
from django.http import Http404
from django.urls import path
from django.views import View

from apps.permissions.policy import as_actor
from apps.proxmox import ProxmoxError
from apps.storage.models import StorageContent

from ...models import Guest
from ...selectors import guest_backups
from ..backup_jobs.services import backup_job_list
from ..backup_jobs.validation import COMPRESSIONS, MODES
from ..backup_jobs.worker import refresh_if_stale as job_refresh_if_stale
from ..base import GuestActionView
from ..common import guest_or_404, partial
from .services import backup_delete, guest_backup, guest_restore
from .validation import _disk_storages, backup_storages


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


class _BackupActionView(GuestActionView):
    """Back up / restore / delete: reasons as one line in the dialog, progress or the operation page."""

    error_context_name, error_keys, service_errors_as_text = "error", False, True
    success_template_name = "guests/backups/partials/started.html"
    redirect_full_page = True


class GuestBackupsView(LoginRequiredMixin, View):
    """The guest's backups page: list (from the synced content), back up now, restore, delete."""

    def get(self, request, pk):
        guest = guest_or_404(request, pk)
        backups = list(guest_backups(user=request.user, guest=guest))
        jobs = [j for j in backup_job_list(user=request.user).filter(cluster_id=guest.cluster_id)
                if j.selection == "all" or guest.vmid in j.vmids or (j.selection == "pool" and j.pool == guest.pool)]
        if as_actor(request.user).is_operator:  # jobs are the operators' (tenants see none)
            job_refresh_if_stale([guest.cluster_id])  # someone looks: the mirror is re-read when stale
        return partial(request, "guests/backups/backups.html", {
            "guest": guest, "object": guest, "backups": backups, "jobs": jobs,
            "live_groups": [f"cluster-{guest.cluster_id}"]})


class GuestBackupView(_BackupActionView):
    """GET: the back-up-now dialog; POST: queue it and answer the live progress panel."""

    form_class = BackupForm
    template_name = "guests/backups/partials/backup_dialog.html"
    audit_action = "guests.guest_backup"

    def perform(self, form):
        return guest_backup(guest=self.object, user=self.request.user, **form.cleaned_data)


class _OneBackupView(_BackupActionView):
    """An action on one backup of the guest (404 unless it is one of the guest's, in the user's scope)."""

    def get_object(self):
        guest = super().get_object()
        self.backup = _backup_or_404(self.request, guest, self.kwargs["backup_pk"])
        return guest

    def get_context_data(self, **kwargs):
        return super().get_context_data(backup=self.backup, **kwargs)

    def get_audit_detail(self, form, result):
        return {"volid": self.backup.volid}


class GuestRestoreView(_OneBackupView):
    """GET: the restore dialog for one backup; POST: queue the restore (progress panel)."""

    form_class = RestoreForm
    template_name = "guests/backups/partials/restore_dialog.html"
    audit_action = "guests.guest_restore"

    def perform(self, form):
        try:
            return guest_restore(guest=self.object, user=self.request.user, backup=self.backup, **form.cleaned_data)
        except ProxmoxError as exc:
            raise ValidationError(f"Could not reserve a vmid. Proxmox said: {exc}") from exc


class GuestBackupDeleteView(_OneBackupView):
    """POST: delete one backup of the guest (progress panel)."""

    audit_action = "guests.backup_delete"

    def perform(self, form):
        return backup_delete(backup=self.backup, user=self.request.user, guest=self.object)


urlpatterns = [
    path("guests/<int:pk>/backups/", GuestBackupsView.as_view(), name="guest_backups"),
    path("guests/<int:pk>/backup/", GuestBackupView.as_view(), name="guest_backup"),
    path("guests/<int:pk>/backups/<int:backup_pk>/restore/", GuestRestoreView.as_view(), name="guest_restore"),
    path("guests/<int:pk>/backups/<int:backup_pk>/delete/", GuestBackupDeleteView.as_view(), name="backup_delete"),
]
