"""Scheduled backup jobs (pve-semantics §9). They live in Proxmox (`/cluster/backup`); the portal
writes through and mirrors them in BackupJob, re-read after each write and every JOB_REFRESH
seconds by the sync loop (a sync handler that queues `guests.backup_job_refresh`).

Modules: validation (calendar events, job fields, Proxmox's refusals as field errors), services
(backup_job_list / _refresh / _create / _update / _delete), worker (the Celery task and the sync
handler), views (`urlpatterns`), api (the viewset; `api_urlpatterns` is its router). The guests'
`backups` package includes these URLs.
"""

from .api import BackupJobSerializer, BackupJobViewSet, api_urlpatterns
from .services import (
    JOB_REFRESH,
    backup_job_create,
    backup_job_delete,
    backup_job_list,
    backup_job_refresh,
    backup_job_update,
)
from .validation import COMPRESSIONS, MODES, RETENTION_KEYS, SELECTIONS, calendar_event_error
from .views import BackupJobDeleteView, BackupJobEditView, BackupJobForm, BackupJobListView, urlpatterns
from .worker import backup_job_refresh_task

__all__ = [
    "COMPRESSIONS", "JOB_REFRESH", "MODES", "RETENTION_KEYS", "SELECTIONS",
    "BackupJobDeleteView", "BackupJobEditView", "BackupJobForm",
    "BackupJobListView", "BackupJobSerializer", "BackupJobViewSet", "api_urlpatterns", "backup_job_create",
    "backup_job_delete", "backup_job_list", "backup_job_refresh", "backup_job_refresh_task", "backup_job_update",
    "calendar_event_error", "urlpatterns",
]
