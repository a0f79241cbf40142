"""Sync metrics for /metrics, read at scrape time (workers and web are different processes)."""

from __future__ import annotations


def _esc(value: str) -> str:
    return str(value).replace("\\", "\\\\").replace('"', '\\"').replace("\n", " ")


def prometheus_lines() -> list[str]:
    from . import presence
    from .models import Cluster

    clusters = list(Cluster.objects.values_list("pk", "name", "status", "last_sync_at", "last_sync_duration"))
    ids = [c[0] for c in clusters]
    watchers = presence.watcher_counts([f"cluster-{pk}" for pk in ids])
    cycles = presence.cycle_metrics(ids)
    from django.utils import timezone

    now = timezone.now()
    out = {
        "duration": ["# HELP datacenter_sync_duration_seconds Duration of the last successful sync cycle.",
                     "# TYPE datacenter_sync_duration_seconds gauge"],
        "age": ["# HELP datacenter_sync_age_seconds Seconds since the last successful sync.",
                "# TYPE datacenter_sync_age_seconds gauge"],
        "up": ["# HELP datacenter_cluster_reachable 1 when the last sync cycle reached the cluster.",
               "# TYPE datacenter_cluster_reachable gauge"],
        "watchers": ["# HELP datacenter_sync_watchers Open pages watching the cluster.",
                     "# TYPE datacenter_sync_watchers gauge"],
        "cycles": ["# HELP datacenter_sync_cycles_total Sync cycles by result.",
                   "# TYPE datacenter_sync_cycles_total counter"],
        "rows": ["# HELP datacenter_sync_rows_written_total Inventory objects changed by sync handlers.",
                 "# TYPE datacenter_sync_rows_written_total counter"],
        "calls": ["# HELP datacenter_sync_proxmox_calls_total Proxmox API calls made by sync cycles, by path.",
                  "# TYPE datacenter_sync_proxmox_calls_total counter"],
    }
    for pk, name, status, last_sync_at, duration in clusters:
        label = f'cluster="{_esc(name)}",cluster_id="{pk}"'
        if duration is not None:
            out["duration"].append(f"datacenter_sync_duration_seconds{{{label}}} {duration:.6f}")
        if last_sync_at is not None:
            out["age"].append(f"datacenter_sync_age_seconds{{{label}}} {(now - last_sync_at).total_seconds():.3f}")
        out["up"].append(f"datacenter_cluster_reachable{{{label}}} {1 if status == 'ok' else 0}")
        out["watchers"].append(f"datacenter_sync_watchers{{{label}}} {watchers.get(f'cluster-{pk}', 0)}")
        stats = cycles.get(pk, {})
        for result in ("ok", "failed"):
            out["cycles"].append(f'datacenter_sync_cycles_total{{{label},result="{result}"}} {stats.get(f"cycles_{result}", 0)}')
        out["rows"].append(f"datacenter_sync_rows_written_total{{{label}}} {stats.get('rows_written', 0)}")
        for stat, n in sorted(stats.items()):
            if stat.startswith("calls "):
                method, _, path = stat[6:].partition(" ")
                out["calls"].append(f'datacenter_sync_proxmox_calls_total{{{label},method="{method}",path="{_esc(path)}"}} {n}')
    return [line for lines in out.values() for line in lines]
