"""Backup job list, add/edit form and delete (UI), with `urlpatterns`."""

from __future__ import annotations

from django import forms
from django.contrib.auth.mixins import LoginRequiredMixin
from django.http import Http404
from django.shortcuts import redirect
from django.urls import path
from django.views import View

from apps.core.actions import ActionView
from apps.permissions.policy import as_actor
from apps.proxmox import ProxmoxError

from ...models import BackupJob
from ...selectors import guest_list
from ..common import partial
from .services import backup_job_create, backup_job_delete, backup_job_list, backup_job_update
from .validation import COMPRESSIONS, MODES, RETENTION_KEYS, SELECTIONS
from .worker import refresh_if_stale


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
    """The jobs of every cluster the user sees. Opening it re-reads the mirror when stale (in a
    worker); the page listens to its clusters and fetches its table again (htmx: the table alone)
    when a re-read changed it, or once its socket is open when it queued one (catch_up: the push
    may come before the page listens)."""

    def get(self, request):
        from apps.nodes.selectors import cluster_list

        jobs = backup_job_list(user=request.user)
        if request.headers.get("HX-Request"):
            return partial(request, "guests/backups/partials/backupjob_table.html", {"jobs": jobs})
        ids = list(cluster_list(user=request.user).values_list("pk", flat=True))
        # An opened page wants a fresh mirror (the jobs are the operators': tenants see none).
        catch_up = refresh_if_stale(ids) if as_actor(request.user).is_operator else False
        return partial(request, "guests/backups/backupjob_list.html", {
            "jobs": jobs, "title": "Backup jobs", "catch_up": catch_up, "live_groups": [f"cluster-{pk}" for pk in ids]})


class _BackupJobActionView(ActionView):
    """Writes go to Proxmox first (its refusals on the form); the services audit; then the list."""

    context_object_name = "job"
    error_template_name = "guests/partials/guest_action_error.html"
    refusals = (ProxmoxError,)
    invalid_status = denied_status = 400

    def get_object(self):
        if "pk" not in self.kwargs:
            return None
        job = backup_job_list(user=self.request.user).filter(pk=self.kwargs["pk"]).first()
        if job is None:
            raise Http404("No such backup job.")
        return job

    def form_valid(self, form, result):
        return redirect("guests:backupjob_list")


class BackupJobEditView(_BackupJobActionView):
    """Add (pk=None) or edit a backup job; field errors from our checks and from Proxmox."""

    form_class = BackupJobForm
    template_name = "guests/backups/backupjob_edit.html"

    def get_form_kwargs(self):
        initial = _job_initial(self.object) if self.object is not None and self.request.method == "GET" else None
        return {"user": self.request.user, "initial": initial}

    def get_context_data(self, **kwargs):
        title = f"Backup job {self.object}" if self.object else "Add backup job"
        return super().get_context_data(retention_fields=[kwargs["form"][k] for k in RETENTION_KEYS], title=title,
                                        **kwargs)

    def refused(self, form, exc, message):
        return self.form_invalid(form, f"Proxmox did not answer: {exc}")

    def perform(self, form):
        if self.object is None:
            return backup_job_create(cluster=form.cleaned_data["cluster"], user=self.request.user,
                                     data=form.job_data(), request=self.request)
        return backup_job_update(job=self.object, user=self.request.user, data=form.job_data(), request=self.request)


class BackupJobDeleteView(_BackupJobActionView):
    def refused(self, form, exc, message):
        return self.form_invalid(form, str(exc))

    def perform(self, form):
        return backup_job_delete(job=self.object, user=self.request.user, request=self.request)


urlpatterns = [
    path("backup-jobs/", BackupJobListView.as_view(), name="backupjob_list"),
    path("backup-jobs/add/", BackupJobEditView.as_view(), name="backupjob_add"),
    path("backup-jobs/<int:pk>/edit/", BackupJobEditView.as_view(), name="backupjob_edit"),
    path("backup-jobs/<int:pk>/delete/", BackupJobDeleteView.as_view(), name="backupjob_delete"),
]
