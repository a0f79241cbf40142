"""Migration: /nodes/{node}/{qemu,lxc}/{vmid}/migrate (precheck + qmigrate/vzmigrate task) and
/nodes/{node}/migrateall (pve-semantics §3.5, qemu-server QemuMigrate.pm, pve-container Migrate.pm).

The task log follows PVE's migration log (timestamped lines, `migration active, transferred X of
Y VM-state, S/s` for live migration) so clients can show progress. The guest changes node (and
its local volumes move with it) only when the migration succeeds; a target that goes away
mid-way ends the task with an error and leaves the guest on the source.

Code by concern:

    resources   what a guest uses: volumes, local and mapped resources, local disks, its HA resource id
    precheck    GET .../{qemu,lxc}/{vmid}/migrate (allowed and refused targets)
    checks      the synchronous checks of both migrate calls, the storage map
    steps       task steps both workers share: log stamps, aborts, waits, volume copies, the hand-over
    qemu        the qmigrate worker (prepare, phase 1-3, live or offline, local disks)
    lxc         the vzmigrate worker (offline, or restart mode)
    start       start_migration (a task) and HA-managed guests' migration request
    endpoints   POST .../{qemu,lxc}/{vmid}/migrate
    migrateall  POST /nodes/{node}/migrateall
"""

from __future__ import annotations

from .resources import guest_volumes, local_disks, local_resources, unavailable_storages
from .precheck import lxc_precondition, qemu_precondition
from .steps import DISK_COPY_SPEED, MIGRATE_SPEED
from .start import start_migration
from .endpoints import lxc_migrate, qemu_migrate
from .migrateall import migrate_all

__all__ = [
    "DISK_COPY_SPEED", "MIGRATE_SPEED", "guest_volumes", "local_disks", "local_resources", "lxc_migrate",
    "lxc_precondition", "migrate_all", "qemu_migrate", "qemu_precondition", "start_migration", "unavailable_storages",
]
