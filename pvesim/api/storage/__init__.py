"""Storage: /storage config, /nodes/{node}/storage status and content, uploads, downloads,
prune, rrd, and /cluster/ceph/status (pve-semantics §8).

Helpers other modules use: `allocate_volume` (a new disk with PVE's naming rules and a
"storage full" failure), `volume_path`, `storage_status`, `prune_marks`, `parse_volume`.

Code by concern:

    schema     storage types, content per type, option declarations (CREATE_PARAMS, UPDATE_PARAMS, PRUNE_PROP)
    volumes    config/status views, paths and volume ids, allocation, backup names, prune marks, install()
    config     /storage (datacenter storage configuration)
    status     /nodes/{node}/storage index, status, rrddata, and /cluster/ceph/status
    content    /nodes/{node}/storage/{storage}/content (list, allocate, info, notes, delete, copy)
    transfer   upload and download-url
    prune      prunebackups (dry run and removal)
"""

from __future__ import annotations

from .schema import (CEPH_FSID, CREATE_PARAMS, DEFAULT_CONTENT, FILE_BASED, PRUNE_KEYS, PRUNE_PROP, REQUIRED,
                     SHARED_TYPES, SUPPORTED_CONTENT, TYPES, UPDATE_PARAMS)
from .volumes import (BACKUP_RE, allocate_volume, backup_ctime, backup_subtype, base_path, config_dict, content_item,
                      install, parse_volume, prune_marks, prune_options, real_volume_id, storage_check, storage_status,
                      task_allocate, volume_path, volumes_on)
from .config import storage_create, storage_delete, storage_index, storage_read, storage_update
from .status import ceph_status, node_storage_dir, node_storage_index, node_storage_rrddata, node_storage_status
from .content import content_copy, content_create, content_delete, content_index, content_info, content_update
from .transfer import download_url, fake_download_checksum, upload
from .prune import prune_dryrun, prune_run

__all__ = [
    "BACKUP_RE", "CEPH_FSID", "CREATE_PARAMS", "DEFAULT_CONTENT", "FILE_BASED", "PRUNE_KEYS", "PRUNE_PROP", "REQUIRED",
    "SHARED_TYPES", "SUPPORTED_CONTENT", "TYPES", "UPDATE_PARAMS", "allocate_volume", "backup_ctime", "backup_subtype",
    "base_path", "ceph_status", "config_dict", "content_copy", "content_create", "content_delete", "content_index",
    "content_info", "content_item", "content_update", "download_url", "fake_download_checksum", "install",
    "node_storage_dir", "node_storage_index", "node_storage_rrddata", "node_storage_status", "parse_volume",
    "prune_dryrun", "prune_marks", "prune_options", "prune_run", "real_volume_id", "storage_check", "storage_create",
    "storage_delete", "storage_index", "storage_read", "storage_status", "storage_update", "task_allocate", "upload",
    "volume_path", "volumes_on",
]
