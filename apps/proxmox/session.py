"""Ticket sessions: a user's password login (`POST /access/ticket`) for the few writes Proxmox
grants to root@pam itself and never to an API token, e.g. a container's device passthrough
(`devN`, pve-container's check_ct_modify_config_perm; pve-semantics §1.3).

    client = login(url=..., username="root@pam", password=..., fingerprint=...)
    try:
        gpus.set_container_devices(client, ref, values={"dev0": "/dev/nvidia0"})
    finally:
        client.close()

The ticket request travels on the client's own session, so the pinned fingerprint (or the CA
bundle) is checked before the password leaves this process; proxmoxer's ticket login posts
with a bare `requests.post`, outside that session, so it is not used. Tickets live in memory
only (one session per piece of work); non-GET calls carry the CSRF token, as Proxmox wants.
"""

from __future__ import annotations

import time

import requests
from proxmoxer.backends.https import ProxmoxHTTPAuth, ProxmoxHTTPAuthBase

from . import metrics
from .client import ProxmoxClient
from .errors import ProxmoxAuthError, ProxmoxError

ROOT = "root@pam"


class CredentialMissing(ProxmoxError):
    """The work needs a user's password login (root@pam) and none is configured."""


class _TicketAuth(ProxmoxHTTPAuth):
    """proxmoxer's ticket auth (cookie + CSRF header, renewal after an hour), but logging in on
    the given session (our TLS transport) and only when `login()` is called."""

    def __init__(self, username: str, *, session, base_url: str, verify_ssl, timeout: float):
        ProxmoxHTTPAuthBase.__init__(self, timeout=timeout, verify_ssl=verify_ssl)
        self.username = username
        self.base_url = base_url
        self.pve_auth_ticket = ""
        self.csrf_prevention_token = ""
        self.birth_time = 0.0
        self._session = session

    def login(self, password: str) -> None:
        self._get_new_tokens(password=password)

    def _get_new_tokens(self, password=None, otp=None, otptype=None):
        anonymous = ProxmoxHTTPAuthBase(timeout=self.timeout, verify_ssl=self.verify_ssl)
        failed = True
        try:
            response = self._session.request(
                "POST", self.base_url + "/access/ticket", auth=anonymous,
                data={"username": self.username, "password": self.pve_auth_ticket if password is None else password})
            failed = response.status_code != 200
        finally:
            metrics.record_call("POST", "access/ticket", failed=failed)
        if response.status_code != 200:
            reason = (response.reason or "authentication failure").strip()
            raise ProxmoxAuthError(f"Proxmox refused the login of {self.username} ({response.status_code} {reason})",
                                   status=response.status_code)
        try:
            data = response.json()["data"] or {}
        except (ValueError, KeyError, TypeError) as exc:
            raise ProxmoxAuthError(f"Proxmox answered the login of {self.username} without a ticket") from exc
        if data.get("NeedTFA"):
            raise ProxmoxAuthError(f"{self.username} has two-factor authentication on Proxmox; a login by password "
                                   "alone cannot finish it", status=401)
        if not data.get("ticket") or not data.get("CSRFPreventionToken"):
            raise ProxmoxAuthError(f"Proxmox answered the login of {self.username} without a ticket")
        self.birth_time = time.monotonic()
        self.pve_auth_ticket = data["ticket"]
        self.csrf_prevention_token = data["CSRFPreventionToken"]


class TicketClient(ProxmoxClient):
    """A ProxmoxClient authenticated by a user's ticket instead of an API token: same calls, same
    typed errors, same TLS modes. Build it with `login()`."""

    def __init__(self, *, url: str, username: str, verify=True, fingerprint: str | None = None,
                 timeout: float | None = None):
        if "@" not in (username or "") or "!" in username:
            raise ValueError(f"username must look like 'user@realm', got '{username}'")
        # The token auth the parent sets up never sends a request: it is replaced below.
        super().__init__(url=url, token_id=f"{username}!ticket", token_secret="", verify=verify,
                         fingerprint=fingerprint, timeout=timeout)
        self.username = username
        session = self._api._store["session"]
        placeholder = self._api._backend.auth
        self._auth = _TicketAuth(username, session=session, base_url=self._api._backend.get_base_url(),
                                 verify_ssl=placeholder.verify_ssl, timeout=placeholder.timeout)
        session.auth = self._auth
        self._api._backend.auth = self._auth

    def __repr__(self) -> str:
        return f"<TicketClient {self.username} {self.host}:{self.port} tls={self.tls_mode}>"

    @property
    def is_root(self) -> bool:
        return self.username == ROOT and bool(self._auth.pve_auth_ticket)

    def login(self, password: str) -> None:
        """POST /access/ticket; raises ProxmoxAuthError (wrong password, TFA), ProxmoxTLSError
        (before the password is sent) or ProxmoxUnreachable."""
        try:
            self._auth.login(password)
        except requests.exceptions.RequestException as exc:
            raise self._from_transport_exception(exc) from exc


def login(*, url: str, username: str, password: str, verify=True, fingerprint: str | None = None,
          timeout: float | None = None) -> TicketClient:
    """A client logged in as `username` with `password` (TLS as in client.connect). The caller
    closes it. Raises the typed errors of TicketClient.login."""
    if not password:
        raise CredentialMissing(f"no password for {username}")
    client = TicketClient(url=url, username=username, verify=verify, fingerprint=fingerprint, timeout=timeout)
    try:
        client.login(password)
    except BaseException:
        client.close()
        raise
    return client
