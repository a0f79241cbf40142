"""Sparse mode: answers hold only what the official PVE API schema promises.

Real clusters differ by version, package and configuration; a client must not rely on fields the
schema marks `"optional": 1`. In sparse mode pvesim drops every such field from every answer
(recursively through `properties` and array `items`), and answers 501 for the endpoints a
Proxmox VE 8.4 cluster does not have. The schema is read from `--schema`, the `PVESIM_SCHEMA`
environment variable, or `../shared/pve-api-schema.json` beside the repository; it is never
copied into the repository.

What stays: the fields the schema declares without `optional`. Undeclared fields of an object
whose properties the schema lists go too (nothing promises them); a free-form object (no
properties listed) stays as it is. Exceptions:
- The login ticket (POST /access/ticket) stays whole (KEPT_WHOLE).
- Configuration answers stay whole: a GET whose optional fields are (mostly) the parameters of a
  PUT/POST on the same path returns a stored configuration, where "optional" means "not set",
  not "may be withheld" (`GET .../qemu/{vmid}/config` keeps its `scsi0`).
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

SCHEMA_ENV = "PVESIM_SCHEMA"
DEFAULT_SCHEMA = Path(__file__).resolve().parents[1].parent / "shared" / "pve-api-schema.json"

# Endpoints a PVE 8.4 cluster lacks. The schema carries no version marks, so they are named here.
NEWER_THAN_8_4: dict[tuple[str, str], str] = {
    # issue 9 / pve-container 6.0: the container migration precheck exists only since PVE 9.0
    ("GET", "/nodes/{node}/lxc/{vmid}/migrate"): "container migration precheck (PVE 9.0)",
    # pve-semantics §4.3: arm-ha/disarm-ha exist in the newest 9.1 builds only
    ("POST", "/cluster/ha/status/arm-ha"): "HA arming (PVE 9.1)",
    ("POST", "/cluster/ha/status/disarm-ha"): "HA disarming (PVE 9.1)",
    # pve-manager 9.0: the pull-metrics export (PullMetric) is new in 9.0
    ("GET", "/cluster/metrics/export"): "metrics export (PVE 9.0)",
}

# Answers kept whole although the schema marks their fields optional.
KEPT_WHOLE: dict[tuple[str, str], str] = {
    # the ticket is optional only for TFA flows, which still return a partial ticket; without it no
    # password client could log in at all
    ("POST", "/access/ticket"): "login ticket",
    # every key is a privilege, optional because a role may lack it: "not set", as in a configuration
    # (its PUT takes them as `privs`, so the configuration test below cannot see it)
    ("GET", "/access/roles/{roleid}"): "a role's privileges",
}

# A GET is a configuration read when at least this share of its optional fields are parameters of
# a PUT/POST on the same path (qemu config 0.92, firewall options 1.0, /cluster/resources 0.0).
CONFIG_SHARE = 0.8


class SchemaUnavailable(RuntimeError):
    pass


def schema_path(explicit: str | os.PathLike | None = None) -> Path:
    """Where the schema is read from: the option, then $PVESIM_SCHEMA, then ../shared/ beside the repo."""
    if explicit:
        return Path(explicit)
    if os.environ.get(SCHEMA_ENV):
        return Path(os.environ[SCHEMA_ENV])
    return DEFAULT_SCHEMA


def load(path: str | os.PathLike | None = None) -> "Sparse":
    """A Sparse filter from the schema file; SchemaUnavailable (naming the path) if it cannot be read."""
    where = schema_path(path)
    try:
        tree = json.loads(Path(where).read_text())
    except FileNotFoundError:
        raise SchemaUnavailable(
            f"sparse mode needs the official PVE API schema, not found at {where} "
            f"(pass --schema FILE or set {SCHEMA_ENV})") from None
    except (OSError, ValueError) as exc:
        raise SchemaUnavailable(f"sparse mode cannot read the PVE API schema at {where}: {exc}") from None
    return Sparse(tree, where)


class Sparse:
    def __init__(self, tree: list[dict], path: Path | None = None):
        self.path = path
        self.methods: dict[str, dict[str, dict]] = {}

        def walk(node: dict) -> None:
            self.methods[node["path"]] = dict(node.get("info") or {})
            for child in node.get("children") or []:
                walk(child)

        for root in tree:
            walk(root)
        self._whole: dict[tuple[str, str], bool] = {}

    def omitted(self, method: str, path: str) -> bool:
        """True for an endpoint newer than PVE 8.4 (sparse mode answers 501)."""
        return (method, path) in NEWER_THAN_8_4

    def returns(self, method: str, path: str) -> dict | None:
        info = self.methods.get(path, {}).get(method)
        return (info or {}).get("returns")

    def prune(self, method: str, path: str, data: Any) -> Any:
        """`data` as the route's schema promises it: optional fields dropped at every depth."""
        schema = self.returns(method, path)
        if not schema or (method, path) in KEPT_WHOLE or self._is_config(method, path):
            return data
        return _prune(schema, data)

    def _is_config(self, method: str, path: str) -> bool:
        key = (method, path)
        if key not in self._whole:
            self._whole[key] = method == "GET" and _config_share(self.methods.get(path, {})) >= CONFIG_SHARE
        return self._whole[key]


def _object_props(schema: dict) -> dict:
    if schema.get("type") == "array":
        schema = schema.get("items") or {}
    return schema.get("properties") or {}


def _config_share(methods: dict[str, dict]) -> float:
    optional = {name for name, prop in _object_props(methods.get("GET", {}).get("returns") or {}).items()
                if prop.get("optional")}
    if not optional:
        return 0.0
    writable: set[str] = set()
    for method in ("PUT", "POST"):
        writable |= set(((methods.get(method) or {}).get("parameters") or {}).get("properties") or {})
    return len(optional & writable) / len(optional)


def _declared(props: dict, key: str) -> dict | None:
    """The schema of field `key`: exact, or an indexed family (`scsi[n]` declares scsi0, scsi1...)."""
    prop = props.get(key)
    if prop is not None:
        return prop
    m = re.fullmatch(r"(.*?)(\d+)", key)
    if m:
        return props.get(f"{m.group(1)}[n]")
    return None


def _prune(schema: Any, value: Any) -> Any:
    if not isinstance(schema, dict):
        return value
    if isinstance(value, list):
        items = schema.get("items")
        return [_prune(items, v) for v in value] if isinstance(items, dict) else value
    if isinstance(value, dict):
        props = schema.get("properties")
        if not props:
            return value  # a free-form object: the schema promises nothing about its keys
        out = {}
        for key, item in value.items():
            prop = _declared(props, key)
            if prop is not None and not prop.get("optional"):
                out[key] = _prune(prop, item)
        return out
    return value
