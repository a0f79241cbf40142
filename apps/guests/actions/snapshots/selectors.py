"""Reads: a guest's snapshots as a tree with the "You are here" row."""

from __future__ import annotations

from ...models import Guest


def snapshot_tree(guest: Guest) -> list[dict]:
    """Snapshots in tree order (parents first, siblings by time) with their depth, plus the
    "You are here" row (the current state) under its parent: [{"snapshot"|None, "depth", "current"}]."""
    snapshots = list(guest.snapshots.all().order_by("snaptime", "name"))
    names = {s.name for s in snapshots}
    children: dict[str, list] = {}
    for s in snapshots:
        children.setdefault(s.parent if s.parent in names else "", []).append(s)
    here = (guest.config or {}).get("parent", "")
    here = here if here in names else ""
    rows: list[dict] = []

    def walk(parent: str, depth: int) -> None:
        for s in children.get(parent, []):
            rows.append({"snapshot": s, "depth": depth, "current": False})
            walk(s.name, depth + 1)
        if parent == here:
            rows.append({"snapshot": None, "depth": depth, "current": True})

    walk("", 0)
    return rows


def snapshot_tree_context(guest: Guest) -> dict:
    return {"guest": guest, "rows": snapshot_tree(guest), "current_parent": (guest.config or {}).get("parent", "")}
