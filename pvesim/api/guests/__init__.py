"""Shared guest machinery for qemu.py and lxc.py, and the helpers other modules call.

Import from here (`from . import guests as G`); the code lives in these modules:

    schema     parameter declarations shared by qemu/lxc (drive_prop, QEMU_NET, LXC_*, disk_enum, rrd_params)
               and the schema formats pvesim checks itself
    base       TASK_TYPES/DURATION, locks (check_lock, lock_guest, unlock_guest, check_skiplock),
               assert_digest, still_exists/still_unlocked (in workers), guest_task (a task that holds a lock),
               require_running, with_guest (privilege check + lookup behind the read routes)
    disks      `STORAGE:SIZE` specs, allocate_volume/allocate_disks, guest_volumes, copy_progress, storage_supports
    config     config_payload/pending_payload, update_config (shared PUT/POST config), check_config_perms, MACs
    status     status_payload, list_item, guest_rrddata
    create     create checks, register_new_guest + create_task (qmcreate/vzcreate), pools
    lifecycle  HA forwarding, start/stop/shutdown, running_guest_task (reboot, reset, ...), destroy + purge
    clone      clone, template
    diskops    resize, move_disk
    snapshots  snapshot_list/_create/_rollback/_delete/_get/_update, feature

Helpers that change state take `cluster.lock` themselves. Route bodies take (ctx, guest, p), do PVE's
sync checks (ApiError) and return a UPID. Workers follow the tasks.py rule: sleep/checkpoint before
applying effects, release locks in finally.
"""

from __future__ import annotations

from .base import (DURATION, TASK_TYPES, assert_digest, check_lock, check_skiplock, guest_task, lock_guest,
                   locked_message, require_running, still_exists, still_unlocked, task_type, unlock_guest,
                   with_guest)
from .clone import clone, convert_to_template, template
from .config import (CONFIG_CONTROL_PARAMS, SECRET_KEYS, cdrom_alias, check_config_perms, config_payload,
                     generate_mac, pending_payload, regenerate_macs, update_config, used_macs, with_mac)
from .create import (add_to_pool, check_pool, check_vm_allocate, check_vmid_free, create_task, discard_new_guest,
                     meta_line, new_guest, register_new_guest, smbios_uuid)
from .diskops import SIZE_RE, move_disk, resize
from .disks import (NEW_DISK_RE, allocate_disks, allocate_volume, check_disk_storages, check_storage, copy_progress,
                    destroy_volumes, disk_volid, guest_volumes, human, is_cdrom, linked_children, new_disk_spec,
                    next_unused_key, replace_file, storage_supports)
from .lifecycle import (destroy, ha_add, ha_configured, ha_managed, ha_sid, ha_status, purge_references,
                        running_guest_task, shutdown_guest, start_guest, stop_guest)
from .schema import (HOSTPCI, IPCONFIG, LXC_DEV, LXC_FEATURES, LXC_MP, LXC_NET, LXC_ROOTFS, QEMU_DISK_BUSES, QEMU_NET,
                     QEMU_NET_MODELS, disk_enum, drive_prop, rrd_params)
from .snapshots import (feature, snapshot_create, snapshot_delete, snapshot_get, snapshot_list, snapshot_rollback,
                        snapshot_update)
from .status import guest_rrddata, list_item, status_payload

__all__ = [
    "CONFIG_CONTROL_PARAMS", "DURATION", "HOSTPCI", "IPCONFIG", "LXC_DEV", "LXC_FEATURES", "LXC_MP", "LXC_NET", "LXC_ROOTFS",
    "NEW_DISK_RE", "QEMU_DISK_BUSES", "QEMU_NET", "QEMU_NET_MODELS", "SECRET_KEYS", "SIZE_RE", "TASK_TYPES",
    "add_to_pool", "allocate_disks", "allocate_volume", "assert_digest", "cdrom_alias", "check_config_perms",
    "check_disk_storages", "check_lock", "check_pool", "check_skiplock", "check_storage", "check_vm_allocate",
    "check_vmid_free", "clone", "config_payload", "convert_to_template", "copy_progress", "create_task", "destroy",
    "destroy_volumes", "discard_new_guest", "disk_enum", "disk_volid", "drive_prop", "feature", "generate_mac",
    "guest_rrddata", "guest_task", "guest_volumes", "ha_add", "ha_configured", "ha_managed", "ha_sid", "ha_status",
    "human", "is_cdrom", "linked_children", "list_item", "lock_guest", "locked_message", "meta_line", "move_disk",
    "new_disk_spec", "new_guest", "next_unused_key", "pending_payload", "purge_references", "regenerate_macs",
    "register_new_guest", "replace_file", "require_running", "resize", "rrd_params", "running_guest_task",
    "shutdown_guest", "smbios_uuid", "snapshot_create", "snapshot_delete", "snapshot_get", "snapshot_list",
    "snapshot_rollback", "snapshot_update", "start_guest", "status_payload", "still_exists", "still_unlocked",
    "stop_guest", "storage_supports", "task_type", "template", "unlock_guest", "update_config", "used_macs",
    "with_guest", "with_mac",
]
