"""Backup job list, add/edit form and delete (UI), with `urlpatterns`."""

from __future__ import annotations

from django import forms
from django.contrib.auth.mixins import LoginRequiredMixin
from django.core.cache import cache
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import Http404
from django.shortcuts import redirect
from django.urls import path
from django.views import View

from apps.proxmox import ProxmoxError

from ...models import BackupJob
from ...selectors import guest_list
from ..common import partial
from .services import JOB_REFRESH, backup_job_create, backup_job_delete, backup_job_list, backup_job_update
from .validation import COMPRESSIONS, MODES, RETENTION_KEYS, SELECTIONS
from .worker import backup_job_refresh_task


class BackupJobForm(forms.Form):
    cluster = forms.ModelChoiceField(queryset=None, empty_label=None)
    schedule = forms.CharField(max_length=128, help_text="PVE calendar event: daily, mon..fri 02:30, sat 03:00, */15")
    enabled = forms.BooleanField(required=False, initial=True)
    storage = forms.CharField(max_length=100)
    selection = forms.ChoiceField(choices=SELECTIONS, initial="vmid", widget=forms.RadioSelect)
    vmids = forms.TypedMultipleChoiceField(coerce=int, required=False, label="Guests")
    pool = forms.CharField(required=False, max_length=100)
    mode = forms.ChoiceField(choices=MODES, initial="snapshot")
    compress = forms.ChoiceField(label="Compression", choices=COMPRESSIONS, initial="zstd")
    comment = forms.CharField(required=False, max_length=512)

    def __init__(self, *args, user, **kwargs):
        from apps.nodes.selectors import cluster_list

        super().__init__(*args, **kwargs)
        self.fields["cluster"].queryset = cluster_list(user=user)
        self.fields["vmids"].choices = [(g.vmid, f"{g.vmid} {g.name}".strip())
                                        for g in guest_list(user=user).filter(template=False).order_by("vmid")]
        for key in RETENTION_KEYS:
            self.fields[key] = forms.IntegerField(required=False, min_value=0, label=key.replace("-", " ").capitalize())

    def job_data(self) -> dict:
        data = {k: self.cleaned_data[k] for k in ("schedule", "enabled", "storage", "selection", "vmids", "pool",
                                                  "mode", "compress", "comment")}
        data["retention"] = {k: self.cleaned_data[k] for k in RETENTION_KEYS if self.cleaned_data.get(k) is not None}
        return data


def _job_initial(job: BackupJob) -> dict:
    return {"cluster": job.cluster_id, "schedule": job.schedule, "enabled": job.enabled, "storage": job.storage,
            "selection": job.selection, "vmids": job.vmids, "pool": job.pool, "mode": job.mode,
            "compress": job.compress, "comment": job.comment, **job.retention}


class BackupJobListView(LoginRequiredMixin, View):
    def get(self, request):
        from apps.nodes.selectors import cluster_list

        for cluster in cluster_list(user=request.user):  # an opened page wants a fresh mirror
            if cache.add(f"guests:backup-jobs:{cluster.pk}", 1, JOB_REFRESH):
                backup_job_refresh_task.delay(cluster.pk)
        jobs = backup_job_list(user=request.user)
        return partial(request, "guests/backups/backupjob_list.html", {"jobs": jobs, "title": "Backup jobs"})


class BackupJobEditView(LoginRequiredMixin, View):
    """Add (pk=None) or edit a backup job; field errors from our checks and from Proxmox."""

    def _job(self, request, pk) -> BackupJob | None:
        if pk is None:
            return None
        job = backup_job_list(user=request.user).filter(pk=pk).first()
        if job is None:
            raise Http404("No such backup job.")
        return job

    def _page(self, request, form, job, status=200):
        return partial(request, "guests/backups/backupjob_edit.html", {
            "form": form, "job": job, "retention_fields": [form[k] for k in RETENTION_KEYS],
            "title": f"Backup job {job}" if job else "Add backup job"}, status)

    def get(self, request, pk=None):
        job = self._job(request, pk)
        form = BackupJobForm(user=request.user, initial=_job_initial(job) if job else None)
        return self._page(request, form, job)

    def post(self, request, pk=None):
        job = self._job(request, pk)
        form = BackupJobForm(request.POST, user=request.user)
        if form.is_valid():
            try:
                if job is None:
                    backup_job_create(cluster=form.cleaned_data["cluster"], user=request.user, data=form.job_data(),
                                      request=request)
                else:
                    backup_job_update(job=job, user=request.user, data=form.job_data(), request=request)
            except ValidationError as exc:
                for name, messages in exc.message_dict.items():
                    for message in messages:  # `retention` and `__all__` have no single field here
                        form.add_error(name if name in form.fields else None, message)
            except PermissionDenied as exc:
                form.add_error(None, str(exc))
            except ProxmoxError as exc:
                form.add_error(None, f"Proxmox did not answer: {exc}")
            else:
                return redirect("guests:backupjob_list")
        return self._page(request, form, job, status=400)


class BackupJobDeleteView(LoginRequiredMixin, View):
    def post(self, request, pk):
        job = backup_job_list(user=request.user).filter(pk=pk).first()
        if job is None:
            raise Http404("No such backup job.")
        try:
            backup_job_delete(job=job, user=request.user, request=request)
        except (PermissionDenied, ProxmoxError) as exc:
            return partial(request, "guests/partials/guest_action_error.html", {"error": str(exc)}, 400)
        return redirect("guests:backupjob_list")


urlpatterns = [
    path("backup-jobs/", BackupJobListView.as_view(), name="backupjob_list"),
    path("backup-jobs/add/", BackupJobEditView.as_view(), name="backupjob_add"),
    path("backup-jobs/<int:pk>/edit/", BackupJobEditView.as_view(), name="backupjob_edit"),
    path("backup-jobs/<int:pk>/delete/", BackupJobDeleteView.as_view(), name="backupjob_delete"),
]
