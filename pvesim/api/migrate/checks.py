"""Checks both migrate calls run before a task starts: target, quorum, lock, storage map, storages."""

from __future__ import annotations

import re

from ...errors import ApiError
from ...state import Cluster, Guest
from ..guests import check_lock
from .resources import guest_volumes


def _bad(field: str, message: str):
    raise ApiError(400, "Parameter verification failed.", {field: message})


def _sync_checks(ctx, p: dict, type_: str) -> tuple[Guest, str]:
    cluster, node, target = ctx.cluster, p["node"], p["target"]
    if target == node:
        _bad("target", "target is local node.")
    cluster.require_quorum(node)
    if target not in cluster.nodes:
        raise ApiError(500, f"no such cluster node '{target}'")
    guest = cluster.guest(p["vmid"], type_, node)
    check_lock(guest)
    return guest, cluster.nodes[target].ip


def _check_storage_availability(cluster: Cluster, guest: Guest, target: str, storagemap: dict[str, str]) -> None:
    """qemu-server check_storage_availability: each volume's storage usable on both nodes."""
    for vol in guest_volumes(guest):
        sid = vol["volid"].split(":", 1)[0]
        cluster.storage(sid)  # does not exist / disabled
        st = cluster.storages[sid]
        target_sid = storagemap.get(sid, storagemap.get("", sid)) if not st.shared else sid
        cluster.storage(target_sid, target)


def _parse_storagemap(text: str | None, field: str) -> dict[str, str]:
    """`storage-pair-list`: `target` (all to one), `src:dst,...`, or `1` (identity)."""
    if not text or text == "1":
        return {}
    out: dict[str, str] = {}
    for item in re.split(r"[,;\s]+", text):
        if not item:
            continue
        if ":" in item:
            src, dst = item.split(":", 1)
            out[src] = dst
        elif "" in out:
            _bad(field, "failed to parse storage map: default target already set")
        else:
            out[""] = item
    return out
