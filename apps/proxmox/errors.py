"""Typed errors for every way a Proxmox call can fail.

Each error keeps Proxmox's exact message (`message`), the HTTP status when there is one
(`status`), and for validation failures the per-field map (`errors`), so callers can show
the operator what Proxmox said without parsing strings.
"""

from __future__ import annotations

import re

_PERMISSION_RE = re.compile(r"Permission check failed \((?P<path>[^,()]+),\s*(?P<privilege>[^)]+)\)")


class ProxmoxError(Exception):
    """Base class: `message` is Proxmox's text (or the transport's), `status` the HTTP code."""

    def __init__(self, message: str, *, status: int | None = None, errors: dict | None = None):
        self.message = (message or "").strip()
        self.status = status
        self.errors = errors or {}
        super().__init__(self.message)

    def __str__(self) -> str:
        if self.errors:
            fields = "; ".join(f"{k}: {v}" for k, v in sorted(self.errors.items()))
            return f"{self.message} ({fields})"
        return self.message


class ProxmoxUnreachable(ProxmoxError):
    """DNS failure, refused connection, timeout, or 595 from a proxied node."""


class ProxmoxTLSError(ProxmoxError):
    """Certificate verification failed or the pinned fingerprint did not match."""

    def __init__(self, message: str, *, expected: str | None = None, actual: str | None = None):
        self.expected = expected
        self.actual = actual
        super().__init__(message)


class ProxmoxAuthError(ProxmoxError):
    """401: the API token is wrong, expired or disabled."""


class ProxmoxPermissionError(ProxmoxError):
    """403: the token lacks a privilege; `path` and `privilege` are parsed when Proxmox names them."""

    def __init__(self, message: str, *, status: int | None = 403, errors: dict | None = None):
        super().__init__(message, status=status, errors=errors)
        match = _PERMISSION_RE.search(self.message)
        self.path = match.group("path").strip() if match else None
        self.privilege = match.group("privilege").strip() if match else None


class ProxmoxNotFound(ProxmoxError):
    """404/501: the path or method does not exist, or the object is gone."""


class ProxmoxValidationError(ProxmoxError):
    """400: Proxmox rejected parameters; `errors` maps each field to its reason."""


class ProxmoxTaskError(ProxmoxError):
    """A Proxmox task ended with an exitstatus other than OK/WARNINGS; `upid` names it."""

    def __init__(self, message: str, *, upid: str | None = None, exitstatus: str | None = None):
        self.upid = upid
        self.exitstatus = exitstatus
        super().__init__(message)
