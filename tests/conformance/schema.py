"""The official PVE 9.1 API schema, read from the `shared/` folder beside the repository.

CI clones the repository next to a copy of `shared/`; the schema is never copied into the repo.
"""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path

SCHEMA_PATH = Path(__file__).resolve().parents[2].parent / "shared" / "pve-api-schema.json"


class SchemaMissing(RuntimeError):
    pass


@lru_cache(maxsize=1)
def endpoints() -> dict[str, dict[str, dict]]:
    """{path: {METHOD: method info}} for every node of the schema tree."""
    if not SCHEMA_PATH.is_file():
        raise SchemaMissing(
            f"PVE API schema not found at {SCHEMA_PATH}: the conformance test needs the shared/ folder "
            "(with pve-api-schema.json) checked out beside this repository")
    out: dict[str, dict[str, dict]] = {}

    def walk(node: dict) -> None:
        out[node["path"]] = dict(node.get("info") or {})
        for child in node.get("children") or []:
            walk(child)

    for root in json.loads(SCHEMA_PATH.read_text()):
        walk(root)
    return out


def served_routes():
    """Every route pvesim declares (importing pvesim.api registers them)."""
    import pvesim.api  # noqa: F401
    from pvesim.router import api

    return list(api.routes)


def coverage() -> tuple[int, int, int, int]:
    """(paths served, schema paths, path+method pairs served, schema path+method pairs)."""
    schema = endpoints()
    served = {(r.path, r.method) for r in served_routes() if r.method in schema.get(r.path, {})}
    return (len({p for p, _ in served}), len(schema), len(served), sum(len(m) for m in schema.values()))
