"""Route registry: every endpoint pvesim serves, declared with its parameters.

    from pvesim.router import api
    @api.get("/nodes/{node}/qemu/{vmid}/status/current", params={...}, proxyto="node")
    def vm_status(ctx, p): ...

Handlers take a `Context` and the validated parameters (path parameters included) and return
the `data` of the answer, or `Result(data, total=...)`. The last `{placeholder}` of a path named
in `greedy` swallows the rest of the URL (storage volume ids contain '/').
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Callable

from .params import Param


@dataclass
class Result:
    data: Any
    total: int | None = None
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class Upgrade:
    """A handler's answer that becomes a websocket: `session(conn)` serves it (websockets' sync
    connection), or `session(None)` when the client did not ask to upgrade and gets `data`."""

    data: Any
    session: Callable


@dataclass
class Route:
    method: str
    path: str
    handler: Callable
    params: dict[str, Param]
    proxyto: str | None = None  # name of the parameter holding the node that executes the call
    allowtoken: bool = True
    auth: bool = True  # False: no ticket/token needed (POST /access/ticket, GET /access/domains)
    quorum: bool = True  # writes refuse without quorum unless False
    returns: str = "any"
    greedy: str | None = None
    regex: re.Pattern = field(init=False)
    literal_parts: int = field(init=False)

    def __post_init__(self):
        pattern = ""
        for part in self.path.strip("/").split("/"):
            m = re.fullmatch(r"\{([^}]+)\}", part)
            if m:
                name = m.group(1)
                group = name.replace("-", "_")
                pattern += f"/(?P<{group}>.+)" if name == self.greedy else f"/(?P<{group}>[^/]+)"
            else:
                pattern += "/" + re.escape(part)
        self.regex = re.compile("^" + pattern + "/?$")
        self.literal_parts = sum(1 for p in self.path.split("/") if p and not p.startswith("{"))
        for name in re.findall(r"\{([^}]+)\}", self.path):
            if name not in self.params:
                raise ValueError(f"{self.method} {self.path}: path parameter {name} is not declared")

    def match(self, path: str) -> dict[str, str] | None:
        m = self.regex.match(path)
        if not m:
            return None
        names = re.findall(r"\{([^}]+)\}", self.path)
        return {name: m.group(name.replace("-", "_")) for name in names}


class Registry:
    def __init__(self):
        self.routes: list[Route] = []

    def route(self, method: str, path: str, params: dict[str, Param] | None = None, **kw):
        def deco(fn):
            self.routes.append(Route(method, path, fn, dict(params or {}), **kw))
            # most literal first so /cluster/ha/status/current beats /cluster/ha/{x}/{y}
            self.routes.sort(key=lambda r: (-r.literal_parts, r.greedy is not None))
            return fn
        return deco

    def get(self, path, params=None, **kw):
        return self.route("GET", path, params, **kw)

    def post(self, path, params=None, **kw):
        return self.route("POST", path, params, **kw)

    def put(self, path, params=None, **kw):
        return self.route("PUT", path, params, **kw)

    def delete(self, path, params=None, **kw):
        return self.route("DELETE", path, params, **kw)

    def find(self, method: str, path: str) -> tuple[Route | None, dict[str, str] | None, bool]:
        """(route, path params, path exists with another method)."""
        other = False
        for route in self.routes:
            params = route.match(path)
            if params is None:
                continue
            if route.method == method:
                return route, params, True
            other = True
        return None, None, other


api = Registry()
