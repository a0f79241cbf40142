"""Prometheus metrics for /metrics.

Apps add metrics to REGISTRY with prometheus_client, e.g.
    OPS = Counter("datacenter_operations_total", "...", ["kind", "status"], registry=REGISTRY)
or register a function returning ready exposition lines (text format) with `register_lines`
(apps.proxmox exposes its call counters this way). Collectors that read the database at scrape
time go through `REGISTRY.register(collector)`.
"""

from __future__ import annotations

import logging
from typing import Callable

from prometheus_client import CollectorRegistry, Gauge, PlatformCollector, ProcessCollector, generate_latest

logger = logging.getLogger(__name__)

REGISTRY = CollectorRegistry(auto_describe=True)
ProcessCollector(registry=REGISTRY)
PlatformCollector(registry=REGISTRY)
UP = Gauge("datacenter_up", "1 while the web process serves requests", registry=REGISTRY)
UP.set(1)

_line_sources: list[Callable[[], list[str]]] = []


def register_lines(source: Callable[[], list[str]]) -> None:
    """Add a function returning Prometheus text lines (`# HELP`, `# TYPE`, samples)."""
    if source not in _line_sources:
        _line_sources.append(source)


def render() -> str:
    parts = [generate_latest(REGISTRY).decode()]
    for source in _line_sources:
        try:
            lines = source()
        except Exception:  # one broken source must not hide every other metric
            logger.exception("metrics source %r failed", source)
            continue
        if lines:
            parts.append("\n".join(lines) + "\n")
    return "".join(parts)
