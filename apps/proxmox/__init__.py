"""The only code that talks to Proxmox (through proxmoxer). Imports no Django model.

Public API: connect, fetch_fingerprint, ProxmoxClient, borrowed, the typed errors, parse_upid/Upid,
follow_task/task_ok, and metrics.call_counts / metrics.prometheus_lines for /metrics; and one
module per area whose functions take the client plus plain values and return plain typed data
(no Proxmox path outside this package):

    cluster   resources, status, HA status, nextid, tasks, backup jobs
    nodes     version, rrddata, task history, network (bridges)
    guests    GuestRef-addressed config/status/power/snapshots/disks/clone/delete/create/migrate
    storage   content, upload, download-url, volume delete
    ha        HA status/resources/rules/groups, quorum, storage replication, Ceph health
    hardware  PCI devices, mdev types, PCI mappings
    nodefs    node files over SSH (no API): guests' .fw [OPTIONS] (IPS), Suricata's eve.json
    gpus      PCI mapping writes, hostpciN / devN values, a container's devN write (root@pam only)
    session   a user's ticket login (POST /access/ticket) for what Proxmox grants root@pam alone
    tasklog   progress parsers, ETA, migration progress, error lines
    explain   Proxmox's refusals in a person's words (one table)
    versions  every version-dependent decision
"""

from . import cluster, explain, guests, ha, hardware, nodefs, nodes, storage, tasklog, versions
from .client import ProxmoxClient, borrowed, connect, fetch_fingerprint, normalize_fingerprint
from .errors import (
    ProxmoxAuthError,
    ProxmoxError,
    ProxmoxNotFound,
    ProxmoxPermissionError,
    ProxmoxTaskError,
    ProxmoxTLSError,
    ProxmoxUnreachable,
    ProxmoxValidationError,
)
from .follow import follow_task, read_new_lines, task_ok
from .refs import GuestRef
from .upid import Upid, is_upid, parse_upid

__all__ = [
    "ProxmoxClient", "borrowed", "GuestRef", "cluster", "explain", "guests", "ha", "hardware", "nodefs", "nodes", "storage",
    "tasklog", "versions", "connect", "fetch_fingerprint", "normalize_fingerprint",
    "ProxmoxError", "ProxmoxUnreachable", "ProxmoxTLSError", "ProxmoxAuthError",
    "ProxmoxPermissionError", "ProxmoxNotFound", "ProxmoxValidationError", "ProxmoxTaskError",
    "follow_task", "read_new_lines", "task_ok", "Upid", "parse_upid", "is_upid",
]
