"""The HTTPS server: /api2/json routing, authentication, validation, envelopes and errors."""

from __future__ import annotations

import json
import logging
import socket
import ssl
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable
from urllib.parse import parse_qs, unquote, urlsplit

from .errors import ApiError
from .params import validate
from .router import Registry, Result, Route, Upgrade, api
from .sparse import Sparse, load as load_sparse
from .state import Cluster

log = logging.getLogger("pvesim")
API_PREFIX = "/api2/json"
ADMIN_PREFIX = "/pvesim"


class Context:
    """Who is calling, and the cluster they talk to."""

    def __init__(self, cluster: Cluster, authid: str | None, method: str, path: str, route: Route | None, node: str | None):
        self.cluster = cluster
        self.authid = authid or ""
        self.userid, _, tok = self.authid.partition("!")
        self.tokenid = tok or None
        self.method = method
        self.path = path
        self.route = route
        self.node = node or cluster.local_node  # the node executing the call

    def has(self, path: str, priv: str) -> bool:
        return self.cluster.access.has(self.authid, path, priv)

    def check(self, path: str, *privs: str, any: bool = False) -> None:
        """403 `Permission check failed (<path>, <priv>)` unless the caller holds the privileges."""
        have = self.cluster.access.privileges(self.authid, path)
        if any:
            if not have.intersection(privs):
                raise ApiError(403, f"Permission check failed ({path}, {'|'.join(privs)})")
            return
        for priv in privs:
            if priv not in have:
                raise ApiError(403, f"Permission check failed ({path}, {priv})")

    @property
    def is_root(self) -> bool:
        return self.userid == "root@pam" and self.tokenid is None


class PveServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128

    def __init__(self, address, cluster_factory: Callable[[], Cluster], admin_secret: str,
                 ssl_context: ssl.SSLContext, registry: Registry = api, admin_registry: Registry | None = None,
                 sparse: bool = False, schema: str | None = None):
        self.schema = schema
        self.sparse: Sparse | None = None  # set: answers carry only what the PVE schema promises
        self._schema_cache: Sparse | None = None
        if sparse:
            self.set_sparse(True)  # before the cluster starts: a missing schema stops here
        self.cluster_factory = cluster_factory
        self.cluster = cluster_factory()
        self.admin_secret = admin_secret
        self.registry = registry
        self.admin_registry = admin_registry
        self.ssl_context = ssl_context
        self._reset_lock = threading.Lock()
        super().__init__(address, Handler)

    def set_sparse(self, on: bool) -> None:
        """Switch sparse mode; SchemaUnavailable (naming the path) when the schema cannot be read."""
        if on and self._schema_cache is None:
            self._schema_cache = load_sparse(self.schema)
        self.sparse = self._schema_cache if on else None

    def get_request(self):
        sock, addr = super().get_request()
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # no 40 ms Nagle/delayed-ACK stalls
        return self.ssl_context.wrap_socket(sock, server_side=True, do_handshake_on_connect=False), addr

    def reset(self) -> None:
        """Replace the cluster with a fresh one built from the scenario."""
        with self._reset_lock:
            old = self.cluster
            old.stop()
            self.cluster = self.cluster_factory()

    def handle_error(self, request, client_address):  # noqa: D102 - quiet on client hang-ups
        log.debug("connection error from %s", client_address, exc_info=True)


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "pve-api-daemon/3.0"
    sys_version = ""
    server: PveServer

    def log_message(self, fmt, *args):  # access log only at debug level
        log.debug("%s - %s", self.address_string(), fmt % args)

    def setup(self):
        super().setup()
        try:
            self.connection.do_handshake()
        except (ssl.SSLError, OSError):
            self.close_connection = True
            raise

    def do_GET(self):
        self._dispatch("GET")

    def do_POST(self):
        self._dispatch("POST")

    def do_PUT(self):
        self._dispatch("PUT")

    def do_DELETE(self):
        self._dispatch("DELETE")

    # ---- plumbing ----------------------------------------------------------------------
    def _read_body(self) -> dict[str, Any]:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        if not raw:
            return {}
        ctype = (self.headers.get("Content-Type") or "").split(";")[0].strip().lower()
        if ctype == "application/json":
            try:
                data = json.loads(raw.decode() or "{}")
            except ValueError:
                raise ApiError(400, "Parameter verification failed.", {"body": "unable to parse JSON body"})
            if not isinstance(data, dict):
                raise ApiError(400, "Parameter verification failed.", {"body": "JSON body must be an object"})
            return {k: v for k, v in data.items() if v is not None}
        if ctype == "multipart/form-data":
            return _multipart_fields(self.headers.get("Content-Type") or "", raw)
        return _flatten(parse_qs(raw.decode("utf-8", "replace"), keep_blank_values=True))

    def _send(self, status: int, reason: str, body: bytes | None, content_type="application/json;charset=UTF-8"):
        self.send_response(status, reason)
        if body is None:
            body = b""
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "max-age=0")
        self.send_header("Pragma", "no-cache")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _send_error(self, err: ApiError):
        if err.status == 401:
            time.sleep(self.server.cluster.clock.real(3.0))  # Proxmox delays failed auth
        body: dict[str, Any] = {"data": None}
        if err.status != 401 or err.message == "authentication failure":
            msg = err.message if err.message.endswith("\n") else err.message + "\n"
            body["message"] = msg
            if err.errors:
                body["errors"] = err.errors
        payload = b"" if (err.status == 401 and "message" not in body) or err.status >= 595 else json.dumps(body).encode()
        self._send(err.status, err.reason, payload)

    def _dispatch(self, method: str):
        url = urlsplit(self.path)
        path = unquote(url.path)
        try:
            if path.startswith(ADMIN_PREFIX + "/"):
                return self._admin(method, path[len(ADMIN_PREFIX):], url.query)
            if not path.startswith(API_PREFIX):
                self._count_unrouted(method, path)
                raise ApiError(501, f"Method '{method} {path}' not implemented")
            self._api(method, path[len(API_PREFIX):] or "/", url.query)
        except ApiError as err:
            self._send_error(err)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True
        except Exception as exc:  # never a traceback to the client: a 500 with the text
            log.exception("internal error on %s %s", method, path)
            self._send_error(ApiError(500, f"internal error: {exc}"))

    def _api(self, method: str, path: str, query: str):
        server = self.server
        cluster = server.cluster
        route, path_params, other = server.registry.find(method, path.rstrip("/") or "/")
        sparse = server.sparse
        if route is None or (sparse is not None and sparse.omitted(method, route.path)):
            self._read_body()
            self._count_unrouted(method, route.path if route is not None else path)
            raise ApiError(501, f"Method '{method} {API_PREFIX}{path}' not implemented")
        with cluster.lock:
            cluster.requests[(method, route.path)] += 1
        delay = cluster.faults.latency + cluster.faults.path_latency.get(route.path, 0.0)
        if delay:
            time.sleep(delay)

        body = self._read_body()
        qparams = _flatten(parse_qs(query, keep_blank_values=True))
        authid = self._authenticate(route, method, cluster)

        raw = {**body, **qparams}
        errors = {}
        for name, value in path_params.items():
            if name in raw and str(raw[name] if not isinstance(raw[name], list) else raw[name][0]) != value:
                errors[name] = "duplicate parameter (already defined in URI) with conflicting values!"
            raw[name] = value
        if errors:
            raise ApiError(400, "Parameter verification failed.", errors)
        params = validate(route.params, raw)

        node = None
        if route.proxyto:
            node = params.get(route.proxyto)
            if node is not None and node != cluster.local_node:
                target = cluster.node(node)
                if not target.online:
                    raise ApiError(595, "No route to host")
        local = cluster.nodes.get(cluster.local_node)
        if local is not None and not local.online:
            raise ApiError(595, "Connection refused")
        if method != "GET" and route.quorum:
            cluster.require_quorum(node or cluster.local_node)

        ctx = Context(cluster, authid, method, path, route, node)
        result = route.handler(ctx, params)
        if isinstance(result, Upgrade):
            if (self.headers.get("Upgrade") or "").lower() == "websocket":
                return self._websocket(path, result)
            result.session(None)
            result = result.data
        out: dict[str, Any] = {}
        if isinstance(result, Result):
            out["data"] = result.data
            if result.total is not None:
                out["total"] = result.total
            out.update(result.extra)
        else:
            out["data"] = result
        if sparse is not None:
            out["data"] = sparse.prune(method, route.path, out["data"])
        self._send(200, "OK", json.dumps(out, separators=(",", ":")).encode())

    def _websocket(self, path: str, upgrade: Upgrade) -> None:
        """Answer the handshake with websockets' own protocol object, then let the route's session
        own the connection until it ends (this handler thread serves nothing else meanwhile)."""
        from websockets.datastructures import Headers
        from websockets.http11 import Request
        from websockets.protocol import Protocol, Side, State
        from websockets.server import ServerProtocol
        from websockets.sync.connection import Connection

        handshake = ServerProtocol(subprotocols=["binary"], select_subprotocol=_binary_if_offered)
        response = handshake.accept(Request(path, Headers(self.headers.items())))
        handshake.send_response(response)
        self.wfile.write(b"".join(handshake.data_to_send()))
        self.wfile.flush()
        self.close_connection = True
        if response.status_code != 101:
            return
        # The request was read by http.server, so frames are parsed by a protocol that starts open.
        protocol = Protocol(Side.SERVER, state=State.OPEN, max_size=2 ** 20)
        conn = Connection(self.connection, protocol, ping_interval=None, close_timeout=2)
        try:
            upgrade.session(conn)
        finally:
            conn.close()

    def _count_unrouted(self, method: str, path: str) -> None:
        """501s count too, so a benchmark sees every call a client made."""
        cluster = self.server.cluster
        with cluster.lock:
            cluster.requests[(method, path)] += 1
            cluster.unrouted[(method, path)] += 1

    def _authenticate(self, route: Route, method: str, cluster: Cluster) -> str | None:
        if not route.auth:
            return None
        access = cluster.access
        header = self.headers.get("Authorization") or ""
        if header.startswith("PVEAPIToken="):
            value = header[len("PVEAPIToken="):].strip()
            full, sep, secret = value.rpartition("=")
            if not sep or "!" not in full or not access.check_token(full, secret):
                raise ApiError(401, "Authentication failed!")
            if not route.allowtoken:
                raise ApiError(403, f"Permission check failed (URI '{route.path}' not available with API token, need proper ticket.")
            return full
        ticket = None
        for part in (self.headers.get("Cookie") or "").split(";"):
            name, _, value = part.strip().partition("=")
            if name == "PVEAuthCookie":
                ticket = unquote(value)
        if ticket is None and header.startswith("PVEAuthCookie="):
            ticket = unquote(header[len("PVEAuthCookie="):])
        if ticket is None:
            raise ApiError(401, "No ticket")
        userid = access.verify_ticket(ticket)
        if userid is None:
            raise ApiError(401, "Authentication failed!")
        if method != "GET" and not access.verify_csrf(userid, self.headers.get("CSRFPreventionToken")):
            raise ApiError(401, "Permission denied - invalid csrf token")
        return userid

    # ---- the simulator's own admin API -------------------------------------------------
    def _admin(self, method: str, path: str, query: str):
        server = self.server
        supplied = self.headers.get("X-PVESim-Admin") or ""
        auth = self.headers.get("Authorization") or ""
        if auth.startswith("Bearer "):
            supplied = auth[7:]
        if not server.admin_secret or supplied != server.admin_secret:
            self._read_body()
            raise ApiError(401, "Authentication failed!")
        if server.admin_registry is None:
            raise ApiError(501, "admin API not available")
        route, path_params, _ = server.admin_registry.find(method, path.rstrip("/") or "/")
        body = self._read_body()
        if route is None:
            raise ApiError(501, f"Method '{method} {ADMIN_PREFIX}{path}' not implemented")
        raw = {**body, **_flatten(parse_qs(query, keep_blank_values=True)), **path_params}
        params = validate(route.params, raw)
        result = route.handler(server, params)
        self._send(200, "OK", json.dumps({"data": result}).encode())


def _binary_if_offered(protocol, subprotocols):
    return "binary" if "binary" in subprotocols else None


def _flatten(parsed: dict[str, list[str]]) -> dict[str, Any]:
    """Single values as strings; repeated keys (arrays) stay lists."""
    return {k: (v[0] if len(v) == 1 else v) for k, v in parsed.items()}


def _multipart_fields(content_type: str, raw: bytes) -> dict[str, str]:
    """multipart/form-data (storage upload): text parts as values; a file part gives its file
    name, which is what PVE's upload handler receives as `filename`."""
    from email.parser import BytesParser
    from email.policy import HTTP

    message = BytesParser(policy=HTTP).parsebytes(f"Content-Type: {content_type}\r\n\r\n".encode() + raw)
    fields: dict[str, str] = {}
    for part in message.iter_parts():
        name = part.get_param("name", header="content-disposition")
        if not name:
            continue
        filename = part.get_filename()
        if filename is not None:
            fields[name] = filename
        else:
            fields[name] = (part.get_payload(decode=True) or b"").decode("utf-8", "replace")
    return fields
