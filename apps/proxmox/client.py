"""Proxmox client factory: proxmoxer over HTTPS with API token auth, TLS verify/pin/insecure.

`connect()` returns a `ProxmoxClient`; every call goes through `ProxmoxClient.request()`,
which sends booleans as 1/0, counts the call for /metrics and turns every failure into a
typed `ProxmoxError` carrying Proxmox's exact message.
"""

from __future__ import annotations

import hashlib
import os
import re
import socket
import ssl
import tempfile
import threading
from contextlib import contextmanager
from typing import Callable, Iterator
from urllib.parse import urlsplit

import requests
from proxmoxer import ProxmoxAPI, ResourceException
from proxmoxer.core import AuthenticationError
from requests.adapters import HTTPAdapter

from . import metrics
from .errors import (
    ProxmoxAuthError,
    ProxmoxError,
    ProxmoxNotFound,
    ProxmoxPermissionError,
    ProxmoxTLSError,
    ProxmoxUnreachable,
    ProxmoxValidationError,
)

DEFAULT_PORT = 8006
_NOT_FOUND_500 = re.compile(r"^Configuration file '.*' does not exist|^no such task|does not exist$")
_URLLIB3_FP_GOT = re.compile(r'got "?([0-9a-fA-F:]+)"?')


def _default_timeout() -> float:
    try:
        from django.conf import settings

        return float(getattr(settings, "PROXMOX_TIMEOUT", 10))
    except Exception:  # settings not configured (pvesim tools, scripts): keep the library default
        return 10.0


def normalize_fingerprint(value: str) -> str:
    """Any SHA-256 spelling (case, colons, spaces) -> `AB:CD:...` as Proxmox shows it."""
    hexdigits = re.sub(r"[^0-9a-fA-F]", "", value or "").upper()
    if len(hexdigits) != 64:
        raise ValueError(f"fingerprint must be a SHA-256 digest (64 hex digits), got '{value}'")
    return ":".join(hexdigits[i : i + 2] for i in range(0, 64, 2))


def _split_url(url: str) -> tuple[str, int]:
    parts = urlsplit(url if "://" in url else f"https://{url}")
    if parts.scheme != "https":
        raise ValueError(f"Proxmox URL must use https, got '{url}'")
    if not parts.hostname:
        raise ValueError(f"Proxmox URL has no host: '{url}'")
    return parts.hostname, parts.port or DEFAULT_PORT


def fetch_fingerprint(url: str, *, timeout: float | None = None) -> str:
    """SHA-256 fingerprint of the certificate the server presents, for first contact (TOFU).

    Does not verify the certificate: the operator compares the value with the one Proxmox shows
    (Datacenter > Node > Certificates) before pinning it. Raises ProxmoxUnreachable / ProxmoxTLSError.
    """
    host, port = _split_url(url)
    try:
        pem = ssl.get_server_certificate((host, port), timeout=timeout or _default_timeout())
    except socket.gaierror as exc:
        raise ProxmoxUnreachable(f"DNS lookup failed for '{host}': {exc.strerror or exc}") from exc
    except ConnectionRefusedError as exc:
        raise ProxmoxUnreachable(f"connection refused by {host}:{port}") from exc
    except (TimeoutError, socket.timeout) as exc:
        raise ProxmoxUnreachable(f"timed out connecting to {host}:{port}") from exc
    except ssl.SSLError as exc:
        raise ProxmoxTLSError(f"TLS handshake with {host}:{port} failed: {exc}") from exc
    except OSError as exc:
        raise ProxmoxUnreachable(f"cannot connect to {host}:{port}: {exc.strerror or exc}") from exc
    return normalize_fingerprint(hashlib.sha256(ssl.PEM_cert_to_DER_cert(pem)).hexdigest())


class PinnedFingerprintAdapter(HTTPAdapter):
    """Transport that accepts exactly one certificate: urllib3 compares the SHA-256 of the
    server's DER certificate right after the TLS handshake, before the request is written."""

    def __init__(self, fingerprint: str, **kwargs):
        self.fingerprint = normalize_fingerprint(fingerprint)
        super().__init__(**kwargs)

    def init_poolmanager(self, *args, **kwargs):
        kwargs["assert_fingerprint"] = self.fingerprint.replace(":", "").lower()
        super().init_poolmanager(*args, **kwargs)


_ca_files: dict[str, str] = {}
_ca_lock = threading.Lock()


def _ca_bundle_path(verify: str) -> str:
    """`verify` may be a CA bundle path or the PEM text itself (as stored on a Cluster)."""
    if "-----BEGIN" not in verify:
        return verify
    key = hashlib.sha256(verify.encode()).hexdigest()
    with _ca_lock:
        path = _ca_files.get(key)
        if path is None or not os.path.exists(path):
            fd, path = tempfile.mkstemp(prefix="proxmox-ca-", suffix=".pem")
            with os.fdopen(fd, "w") as fh:
                fh.write(verify)
            _ca_files[key] = path
    return path


def _to_wire(params: dict) -> dict:
    """Drop None, send booleans as 1/0 (Proxmox rejects 'True')."""
    out = {}
    for key, value in params.items():
        if value is None:
            continue
        out[key] = int(value) if isinstance(value, bool) else value
    return out


def _keep_proxmox_message(response, *args, **kwargs):
    # proxmoxer only keeps the reason phrase (first line); the JSON body has Proxmox's full text.
    if response.status_code >= 400:
        try:
            body = response.json()
        except ValueError:
            return response
        message = body.get("message") if isinstance(body, dict) else None
        if message:
            response.reason = message.strip()
    return response


class ProxmoxClient:
    """One Proxmox API endpoint with one API token. Thread-safe enough for one worker thread;
    create one per task or per sync cycle (cheap: no request until the first call)."""

    def __init__(self, *, url: str, token_id: str, token_secret: str, verify=True,
                 fingerprint: str | None = None, timeout: float | None = None):
        if "!" not in (token_id or ""):
            raise ValueError(f"token_id must look like 'user@realm!tokenname', got '{token_id}'")
        host, port = _split_url(url)
        user, token_name = token_id.split("!", 1)
        self.url = url
        self.host, self.port = host, port
        self.fingerprint = normalize_fingerprint(fingerprint) if fingerprint else None
        if self.fingerprint:
            self.tls_mode, verify_ssl = "pin", False
        elif verify is False:
            self.tls_mode, verify_ssl = "insecure", False
        elif verify is True or verify is None:
            self.tls_mode, verify_ssl = "verify", True
        else:
            self.tls_mode, verify_ssl = "verify", _ca_bundle_path(str(verify))
        self._api = ProxmoxAPI(
            host, port=port, user=user, token_name=token_name, token_value=token_secret,
            verify_ssl=verify_ssl, timeout=timeout or _default_timeout(), backend="https",
        )
        session = self._api._store["session"]
        session.hooks["response"].append(_keep_proxmox_message)
        if self.fingerprint:
            session.mount("https://", PinnedFingerprintAdapter(self.fingerprint))

    def __repr__(self) -> str:
        return f"<ProxmoxClient {self.host}:{self.port} tls={self.tls_mode}>"

    def close(self) -> None:
        self._api._store["session"].close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    # -- generic calls -------------------------------------------------------------------
    def request(self, method: str, path: str, /, **params):
        """Call `METHOD /api2/json/<path>` and return `data`; raises a typed ProxmoxError. `path` is
        positional-only: Proxmox has parameters named `path` (PUT /access/acl)."""
        resource = self._api(path.strip("/"))
        failed = True
        try:
            if method in ("GET", "DELETE"):
                result = resource._request(method, params=_to_wire(params))
            else:
                result = resource._request(method, data=_to_wire(params))
            failed = False
            return result
        except ResourceException as exc:
            raise self._from_resource_exception(exc) from exc
        except requests.exceptions.RequestException as exc:
            raise self._from_transport_exception(exc) from exc
        except AuthenticationError as exc:
            raise ProxmoxAuthError(str(exc), status=401) from exc
        finally:
            metrics.record_call(method, path, failed=failed)

    def get(self, path: str, /, **params):
        return self.request("GET", path, **params)

    def post(self, path: str, /, **data):
        return self.request("POST", path, **data)

    def put(self, path: str, /, **data):
        return self.request("PUT", path, **data)

    def delete(self, path: str, /, **params):
        return self.request("DELETE", path, **params)

    # -- readers -------------------------------------------------------------------------
    def version(self) -> dict:
        return self.get("version")

    def cluster_resources(self, type: str | None = None) -> list[dict]:
        return self.get("cluster/resources", type=type) or []

    def cluster_status(self) -> list[dict]:
        return self.get("cluster/status") or []

    def ha_status(self) -> list[dict]:
        return self.get("cluster/ha/status/current") or []

    def task_status(self, node: str, upid: str) -> dict:
        """The task's status; `exitstatus` of a stopped task is optional in the schema, so when it is
        missing it is read from the log's closing `TASK OK` / `TASK WARNINGS: n` / `TASK ERROR: ...`."""
        status = self.get(f"nodes/{node}/tasks/{upid}/status") or {}
        if status.get("status") == "stopped" and not status.get("exitstatus"):
            status = dict(status, exitstatus=exitstatus_from_log(self.task_log(node, upid, 0, 100000)))
        return status

    def task_log(self, node: str, upid: str, start: int = 0, limit: int = 500) -> list[dict]:
        """Log lines `[{"n": 1, "t": "..."}]` from 0-based offset `start`; `n` is 1-based."""
        return self.get(f"nodes/{node}/tasks/{upid}/log", start=start, limit=limit) or []

    def stop_task(self, node: str, upid: str):
        return self.delete(f"nodes/{node}/tasks/{upid}")

    # -- error mapping -------------------------------------------------------------------
    def _from_resource_exception(self, exc: ResourceException) -> ProxmoxError:
        status = exc.status_code
        message = (exc.content or exc.status_message or "").strip()
        errors = exc.errors if isinstance(exc.errors, dict) and "errors" not in exc.errors else None
        if status == 401:
            return ProxmoxAuthError(message or "Authentication failed!", status=status)
        if status == 403:
            return ProxmoxPermissionError(message, status=status, errors=errors)
        if status == 400:
            return ProxmoxValidationError(message, status=status, errors=errors)
        if status in (404, 501) or (status == 500 and _NOT_FOUND_500.search(message)):
            return ProxmoxNotFound(message, status=status, errors=errors)
        if 595 <= status <= 599:
            return ProxmoxUnreachable(message or exc.status_message, status=status)
        return ProxmoxError(message, status=status, errors=errors)

    def _from_transport_exception(self, exc: requests.exceptions.RequestException) -> ProxmoxError:
        where = f"{self.host}:{self.port}"
        text = str(exc)
        if isinstance(exc, requests.exceptions.SSLError):
            if "Fingerprints did not match" in text:
                got = _URLLIB3_FP_GOT.search(text)
                actual = normalize_fingerprint(got.group(1)) if got else None
                return ProxmoxTLSError(
                    f"TLS fingerprint mismatch for {where}: expected {self.fingerprint}, "
                    f"server presented {actual or 'an unknown certificate'}",
                    expected=self.fingerprint, actual=actual,
                )
            return ProxmoxTLSError(f"TLS verification of {where} failed: {_innermost(exc)}")
        if isinstance(exc, requests.exceptions.Timeout):
            return ProxmoxUnreachable(f"timed out talking to {where}")
        if isinstance(exc, requests.exceptions.ConnectionError):
            low = text.lower()
            if any(s in low for s in ("name or service not known", "nameresolution", "failed to resolve",
                                      "temporary failure in name resolution", "nodename nor servname",
                                      "no address associated")):
                return ProxmoxUnreachable(f"DNS lookup failed for '{self.host}'")
            if "connection refused" in low:
                return ProxmoxUnreachable(f"connection refused by {where}")
            return ProxmoxUnreachable(f"cannot connect to {where}: {_innermost(exc)}")
        return ProxmoxUnreachable(f"request to {where} failed: {_innermost(exc)}")


def exitstatus_from_log(lines: list[dict]) -> str:
    """`OK`, `WARNINGS: n` or the error text from the last `TASK ...` line of a finished task's log."""
    for line in reversed(lines or []):
        text = str(line.get("t", ""))
        if text == "TASK OK":
            return "OK"
        if text.startswith("TASK WARNINGS:"):
            return text[len("TASK "):]
        if text.startswith("TASK ERROR:"):
            return text[len("TASK ERROR:"):].strip()
    return "unexpected status"


def _innermost(exc: BaseException) -> str:
    # requests wraps urllib3's MaxRetryError, whose `reason` is the socket/ssl error worth showing.
    inner = exc.args[0] if exc.args else exc
    return str(getattr(inner, "reason", None) or inner)


def connect(*, url: str, token_id: str, token_secret: str, verify=True,
            fingerprint: str | None = None, timeout: float | None = None) -> ProxmoxClient:
    """Build a client for `url` with API token `token_id` (`user@realm!name`) and its secret.

    TLS: `fingerprint` given -> pin (only that certificate, checked before any request is sent);
    else `verify=True` -> system CA store, a path or PEM text -> that CA bundle, `False` -> insecure.
    No network traffic happens here; the first call raises the typed error if anything is wrong.
    """
    return ProxmoxClient(url=url, token_id=token_id, token_secret=token_secret, verify=verify,
                         fingerprint=fingerprint, timeout=timeout)


@contextmanager
def borrowed(client: "ProxmoxClient | None", open_client: Callable[[], "ProxmoxClient"]) -> Iterator["ProxmoxClient"]:
    """Use the caller's `client` (the caller closes it), or open one with `open_client()` and close
    it afterwards: one way for every function that may run inside a larger piece of work."""
    if client is not None:
        yield client
        return
    own = open_client()
    try:
        yield own
    finally:
        own.close()
