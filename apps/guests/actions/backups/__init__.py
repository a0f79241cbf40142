"""Backups of a guest (pve-semantics §9): back up now, restore, delete; plus, through `backup_jobs`,
the URLs of the scheduled backup jobs (one include in guests/urls.py and guests/api/urls.py).

Back up now (`POST /nodes/{node}/vzdump`), restore over the same guest (`force=1`) or as a new
guest (a vmid reserved first), delete a backup: each an Operation whose percentage comes from
the task log. A guest's backups are the synced StorageContent rows (content=backup) with its
vmid; the storage's content is re-read after every change.

Modules: validation (vzdump options, storages), services (guest_backup / guest_restore /
backup_delete), worker (Celery tasks `guests.guest_backup`, `guests.guest_restore`,
`guests.backup_delete`), views (`urlpatterns`), api (`api_urlpatterns`).
"""

from ..backup_jobs import (
    COMPRESSIONS,
    JOB_REFRESH,
    MODES,
    RETENTION_KEYS,
    SELECTIONS,
    BackupJobDeleteView,
    BackupJobEditView,
    BackupJobForm,
    BackupJobListView,
    BackupJobSerializer,
    BackupJobViewSet,
    backup_job_create,
    backup_job_delete,
    backup_job_list,
    backup_job_refresh,
    backup_job_refresh_task,
    backup_job_update,
    calendar_event_error,
)
from ..backup_jobs import api_urlpatterns as _job_api_urlpatterns
from ..backup_jobs import urlpatterns as _job_urlpatterns
from .api import (
    BackupDeleteAPIView,
    BackupRequestSerializer,
    GuestBackupAPIView,
    GuestRestoreAPIView,
    RestoreRequestSerializer,
)
from .api import api_urlpatterns as _api_urlpatterns
from .services import backup_delete, guest_backup, guest_restore
from .validation import backup_storages
from .views import (
    BackupForm,
    GuestBackupDeleteView,
    GuestBackupsView,
    GuestBackupView,
    GuestRestoreView,
    RestoreForm,
)
from .views import urlpatterns as _urlpatterns
from .worker import (
    backup_delete_task,
    guest_backup_task,
    guest_restore_task,
    run_backup,
    run_backup_delete,
    run_restore,
)

# The jobs' URLs ride along, in the order the single module had them.
urlpatterns = [*_urlpatterns, *_job_urlpatterns]
api_urlpatterns = [*_job_api_urlpatterns, *_api_urlpatterns]

__all__ = [
    "COMPRESSIONS", "JOB_REFRESH", "MODES", "RETENTION_KEYS", "SELECTIONS", "BackupDeleteAPIView", "BackupForm",
    "BackupJobDeleteView", "BackupJobEditView", "BackupJobForm", "BackupJobListView", "BackupJobSerializer",
    "BackupJobViewSet", "BackupRequestSerializer", "GuestBackupAPIView", "GuestBackupDeleteView",
    "GuestBackupView", "GuestBackupsView", "GuestRestoreAPIView", "GuestRestoreView", "RestoreForm",
    "RestoreRequestSerializer", "api_urlpatterns", "backup_delete", "backup_delete_task", "backup_job_create",
    "backup_job_delete", "backup_job_list", "backup_job_refresh", "backup_job_refresh_task", "backup_job_update",
    "backup_storages", "calendar_event_error", "guest_backup", "guest_backup_task", "guest_restore",
    "guest_restore_task", "run_backup", "run_backup_delete", "run_restore", "urlpatterns",
]
