"""Count of Proxmox calls by method and path template, for /metrics.

Counts are grouped by template (`GET /nodes/{node}/tasks/{upid}/status`) so the label set
stays small whatever the number of nodes, guests or tasks. Each process keeps its own counter
and also adds to two Redis hashes, because the calls are made by Celery workers while /metrics
is served by the web process: /metrics shows the totals of every process.
"""

from __future__ import annotations

import logging
import threading
from collections import Counter

logger = logging.getLogger(__name__)

# Segment that follows each collection name is an identifier; name its placeholder.
_PLACEHOLDERS = {
    "nodes": "node",
    "qemu": "vmid",
    "lxc": "vmid",
    "tasks": "upid",
    "storage": "storage",
    "snapshot": "snapname",
    "pools": "poolid",
    "users": "userid",
    "token": "tokenid",
    "groups": "groupid",
    "roles": "roleid",
    "domains": "realm",
    "pci": "pciid",
    "usb": "id",
    "rules": "rule",
    "aliases": "name",
    "ipset": "name",
    "replication": "id",
    "backup": "id",
}
# Under these parents the next segment is an identifier even though the name is generic.
_PARENT_PLACEHOLDERS = {("ha", "resources"): "sid", ("ha", "groups"): "group", ("ha", "rules"): "rule"}
# Collections whose identifier swallows the rest of the path (volids contain '/').
_GREEDY = {"content": "volume"}
# Literal children that must never be read as identifiers.
_LITERALS = {"status", "config", "current", "log", "resources", "nextid", "options", "ha", "mdev",
             "rrddata", "network", "version", "acl", "firewall", "mapping", "vzdump", "sdn"}

_lock = threading.Lock()
_calls: Counter = Counter()
_errors: Counter = Counter()


def path_template(path: str) -> str:
    """`/nodes/pve1/qemu/100/status/start` -> `/nodes/{node}/qemu/{vmid}/status/start`."""
    parts = [p for p in path.strip("/").split("/") if p]
    out: list[str] = []
    i = 0
    while i < len(parts):
        seg = parts[i]
        out.append(seg)
        nxt = parts[i + 1] if i + 1 < len(parts) else None
        if nxt is None:
            break
        parent = out[-2] if len(out) >= 2 else None
        if seg in _GREEDY:
            out.append("{" + _GREEDY[seg] + "}")
            break
        name = _PARENT_PLACEHOLDERS.get((parent, seg)) or _PLACEHOLDERS.get(seg)
        if name and nxt not in _LITERALS:
            out.append("{" + name + "}")
            i += 2
            continue
        if nxt.isdigit():
            out.append("{id}")
            i += 2
            continue
        i += 1
    return "/" + "/".join(out)


_redis = None


def _shared():
    """(redis client, key prefix) for the cross-process totals, or (None, '') without Redis."""
    global _redis
    try:
        from django.conf import settings

        url = getattr(settings, "REDIS_URL", "")
        prefix = f"{getattr(settings, 'TEST_RUN_ID', '') or 'dc'}:proxmox:"
    except Exception:  # used outside Django (scripts): per-process counts only
        return None, ""
    if not url:
        return None, ""
    if _redis is None:
        import redis

        _redis = redis.Redis.from_url(url, socket_timeout=1, socket_connect_timeout=1)
    return _redis, prefix


def record_call(method: str, path: str, *, failed: bool = False) -> None:
    key = (method.upper(), path_template(path))
    with _lock:
        _calls[key] += 1
        if failed:
            _errors[key] += 1
    client, prefix = _shared()
    if client is None:
        return
    try:  # metrics are best effort: a Redis hiccup must never fail a Proxmox call
        pipe = client.pipeline(transaction=False)
        pipe.hincrby(prefix + "calls", f"{key[0]} {key[1]}", 1)
        if failed:
            pipe.hincrby(prefix + "errors", f"{key[0]} {key[1]}", 1)
        pipe.execute()
    except Exception:
        logger.debug("could not add a Proxmox call to the shared counters", exc_info=True)


def _shared_counts(name: str) -> dict[tuple[str, str], int] | None:
    client, prefix = _shared()
    if client is None:
        return None
    try:
        raw = client.hgetall(prefix + name)
    except Exception:
        return None
    out = {}
    for field, value in raw.items():
        method, _, template = field.decode().partition(" ")
        out[(method, template)] = int(value)
    return out


def call_counts() -> dict[tuple[str, str], int]:
    """Snapshot of {(method, template): calls} in this process."""
    with _lock:
        return dict(_calls)


def error_counts() -> dict[tuple[str, str], int]:
    with _lock:
        return dict(_errors)


def prometheus_lines() -> list[str]:
    """Prometheus text exposition lines for /metrics (counter `proxmox_api_calls_total`)."""
    calls = _shared_counts("calls")
    errors = _shared_counts("errors")
    lines = [
        "# HELP proxmox_api_calls_total Proxmox API calls made by the portal's processes.",
        "# TYPE proxmox_api_calls_total counter",
    ]
    for (method, template), n in sorted((calls if calls is not None else call_counts()).items()):
        lines.append(f'proxmox_api_calls_total{{method="{method}",path="{template}"}} {n}')
    lines += [
        "# HELP proxmox_api_errors_total Proxmox API calls that failed.",
        "# TYPE proxmox_api_errors_total counter",
    ]
    for (method, template), n in sorted((errors if errors is not None else error_counts()).items()):
        lines.append(f'proxmox_api_errors_total{{method="{method}",path="{template}"}} {n}')
    return lines


def reset() -> None:
    with _lock:
        _calls.clear()
        _errors.clear()
