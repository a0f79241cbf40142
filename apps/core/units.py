"""Byte sizes for people, in binary units as Proxmox shows them: the one formatter of the portal.

Templates use it as the `bytes_h` filter (a builtin: no `{% load %}` needed), Python code that
builds text calls `binary_size`; static/js/charts.js follows the same rules for live charts."""

from __future__ import annotations

UNITS = ("B", "KiB", "MiB", "GiB", "TiB", "PiB")
MIB = 1024**2


def binary_size(value) -> str:
    """1073741824 -> '1.0 GiB'; 512 -> '512 B'; None or garbage -> '—'."""
    if value is None or value == "":
        return "—"
    try:
        size = float(value)
    except (TypeError, ValueError):
        return "—"
    for unit in UNITS:
        if abs(size) < 1024 or unit == UNITS[-1]:
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return "—"  # unreachable: the last unit always returns


def used_of(used, total) -> str:
    """'12.0 GiB / 64.0 GiB'."""
    return f"{binary_size(used)} / {binary_size(total)}"
