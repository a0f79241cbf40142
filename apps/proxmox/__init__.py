"""The only code that talks to Proxmox (through proxmoxer). Imports no Django model.

Public API: connect, fetch_fingerprint, ProxmoxClient, the typed errors, parse_upid/Upid,
follow_task/task_ok, and metrics.call_counts / metrics.prometheus_lines for /metrics.
"""

from .client import ProxmoxClient, connect, fetch_fingerprint, normalize_fingerprint
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
from .upid import Upid, is_upid, parse_upid

__all__ = [
    "ProxmoxClient", "connect", "fetch_fingerprint", "normalize_fingerprint",
    "ProxmoxError", "ProxmoxUnreachable", "ProxmoxTLSError", "ProxmoxAuthError",
    "ProxmoxPermissionError", "ProxmoxNotFound", "ProxmoxValidationError", "ProxmoxTaskError",
    "follow_task", "read_new_lines", "task_ok", "Upid", "parse_upid", "is_upid",
]
