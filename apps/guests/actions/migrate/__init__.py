"""Migrate a guest to another node of its cluster (pve-semantics §3.5).

Targets come from Proxmox's precheck (`GET .../migrate`) plus the portal's view of which nodes
are online; every refused node gets its reason in words. Running VMs migrate live (`online=1`,
local disks mirrored with `with-local-disks=1`), running containers in restart mode. The
operation's percentage comes from the task log (disk copy / mirror lines first, then
`migration active, transferred X of Y VM-state`); when the task ends the guest row is re-read
on its new node, so the page shows the move without waiting for the next sync.

Modules: plans (migrate_plan: the precheck in words), services (guest_migrate), worker (Celery
task `guests.guest_migrate`, MigrationProgress, explain_migrate_error), views (`urlpatterns`),
api (`api_urlpatterns`).
"""

from .api import (
    GuestMigrateAPIView,
    GuestMigrateTargetsAPIView,
    MigrateRequestSerializer,
    ProxmoxDown,
    ProxmoxRefused,
    api_urlpatterns,
)
from .plans import MigratePlan, MigrateTarget, migrate_plan
from .services import guest_migrate
from .views import GuestMigrateView, MigrateForm, urlpatterns
from .worker import HA_WAIT, MigrationProgress, explain_migrate_error, guest_migrate_task, run_migrate

__all__ = [
    "HA_WAIT", "GuestMigrateAPIView", "GuestMigrateTargetsAPIView", "GuestMigrateView", "MigrateForm",
    "MigratePlan", "MigrateRequestSerializer", "MigrateTarget", "MigrationProgress", "ProxmoxDown",
    "ProxmoxRefused", "api_urlpatterns", "explain_migrate_error", "guest_migrate",
    "guest_migrate_task", "migrate_plan", "run_migrate", "urlpatterns",
]
