"""Snapshots of a guest: take (with RAM state for running VMs), list as a tree, roll back, delete.

Each action is an operation whose worker starts the Proxmox task, follows it, then re-reads that one
guest (config with its `parent` = "You are here", snapshot list) and pushes the tree to `guest-<pk>`,
so open pages update live. The periodic sync never reads snapshots.

Modules: services (name checks + the three actions), worker (Celery tasks `guests.snapshot_create`,
`_rollback`, `_delete`, `guests.snapshots_refresh`), selectors (the tree), views (`urlpatterns`),
api (`api_urlpatterns`).
"""

from .api import GuestSnapshotAPIView, GuestSnapshotRollbackAPIView, GuestSnapshotsAPIView, api_urlpatterns
from .selectors import snapshot_tree, snapshot_tree_context
from .services import guest_snapshot_create, guest_snapshot_delete, guest_snapshot_rollback, validate_snapname
from .views import GuestSnapshotActionView, GuestSnapshotsView, GuestSnapshotTreeView, SnapshotForm, urlpatterns
from .worker import (
    run_snapshot,
    snapshot_create_task,
    snapshot_delete_task,
    snapshot_rollback_task,
    snapshots_refresh_if_stale,
    snapshots_refresh_task,
)

__all__ = [
    "GuestSnapshotAPIView", "GuestSnapshotActionView", "GuestSnapshotRollbackAPIView", "GuestSnapshotTreeView",
    "GuestSnapshotsAPIView", "GuestSnapshotsView", "SnapshotForm", "api_urlpatterns", "guest_snapshot_create",
    "guest_snapshot_delete", "guest_snapshot_rollback", "run_snapshot", "snapshot_create_task",
    "snapshot_delete_task", "snapshot_rollback_task", "snapshot_tree", "snapshot_tree_context",
    "snapshots_refresh_if_stale", "snapshots_refresh_task", "urlpatterns", "validate_snapname",
]
