"""Behaviour that depends on the Proxmox VE version, decided here and nowhere else.

Versions come from GET /version or /nodes/{node}/version (`version` e.g. "9.1.1", `release`
"9.1"); the portal records each node's at sync. An unknown version (None) means "try and fall
back on Proxmox's answer", never "refuse".
"""

from __future__ import annotations

import re


def parse(version: str | None) -> tuple[int, ...] | None:
    """"9.1.1" / "8.4-1" / "pve-manager/8.3.2/..." -> (9, 1, 1); None when it does not parse."""
    match = re.search(r"(\d+)\.(\d+)(?:[.-](\d+))?", version or "")
    if not match:
        return None
    return tuple(int(g) for g in match.groups() if g is not None)


def at_least(version: str | None, *minimum: int) -> bool | None:
    """True/False when `version` is known, None when it is not."""
    parsed = parse(version)
    return None if parsed is None else parsed >= minimum


def has_lxc_migrate_precheck(version: str | None) -> bool:
    # GET /nodes/{node}/lxc/{vmid}/migrate exists since PVE 9.0 (pve-container 6.0); older nodes answer 501.
    return at_least(version, 9, 0) is not False



def has_metrics_export(version: str | None) -> bool:
    # GET /cluster/metrics/export (PullMetric) exists since PVE 9.0 (pve-manager 9.0); older answer 501.
    return at_least(version, 9, 0) is not False
