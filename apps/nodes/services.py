"""Writes for clusters: registration with a connection test, edits, deletion, sync requests.

Everything that talks to Proxmox goes through `apps.proxmox` from here or from sync.py.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from urllib.parse import urlsplit

from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from apps.core.models import AuditResult
from apps.core.services import audit_log
from apps.proxmox import client as proxmox
from apps.proxmox import cluster as pve_cluster
from apps.proxmox import nodes as pve_nodes
from apps.proxmox import session as pve_session
from apps.proxmox.errors import (
    ProxmoxAuthError,
    ProxmoxError,
    ProxmoxPermissionError,
    ProxmoxTLSError,
    ProxmoxUnreachable,
)

from .choices import ClusterStatus, TlsMode
from .models import Cluster

logger = logging.getLogger(__name__)

CONNECTION_FIELDS = ("api_url", "token_id", "token_secret", "tls_mode", "ca_cert", "fingerprint")
PROBE_TIMEOUT = 10.0


@dataclass
class Probe:
    """What a successful connection test learned."""

    version: str
    cluster_name: str
    nodes: int
    quorate: bool
    fingerprint: str = ""
    clustered: bool = False  # /cluster/status has a "cluster" entry (not a standalone node)


class FingerprintConfirmationRequired(ValidationError):
    """Pin mode without a fingerprint: `presented` is what the server shows, for the operator to confirm."""

    def __init__(self, presented: str, url: str):
        self.presented = presented
        super().__init__({"fingerprint": [
            f"The server at {url} presents the certificate fingerprint {presented}. Compare it with the "
            "one Proxmox shows (node > System > Certificates) and submit it to pin it."
        ]})


def cluster_client(cluster: Cluster, *, timeout: float | None = None) -> proxmox.ProxmoxClient:
    """A Proxmox client for `cluster` with its TLS mode (no network traffic until the first call)."""
    return connect_values(api_url=cluster.api_url, token_id=cluster.token_id, token_secret=cluster.token_secret,
                          tls_mode=cluster.tls_mode, ca_cert=cluster.ca_cert, fingerprint=cluster.fingerprint,
                          timeout=timeout)


def _tls(tls_mode, ca_cert="", fingerprint="") -> dict:
    if tls_mode == TlsMode.PIN:
        return {"fingerprint": fingerprint}
    return {"verify": False if tls_mode == TlsMode.INSECURE else (ca_cert.strip() or True)}


ROOT_CREDENTIAL_WHY = ("Proxmox lets only root@pam itself, never an API token, pass device nodes into a container "
                       "(devN)")


def root_credential_missing_text(cluster: Cluster) -> str:
    """What a person reads when a container GPU cannot be given because no credential is set."""
    return (f"cluster {cluster.name} has no root@pam credential: {ROOT_CREDENTIAL_WHY}. An operator enters "
            f"root@pam's password in the cluster's settings (Clusters › {cluster.name} › Edit)")


def cluster_root_client(cluster: Cluster, *, timeout: float | None = None):
    """A root@pam ticket session on `cluster` (same TLS mode and pinned fingerprint as its token
    client), for the container devN write only. Raises session.CredentialMissing when none is
    configured, ProxmoxAuthError when Proxmox refuses the password. The caller closes it."""
    if not cluster.root_password:
        raise pve_session.CredentialMissing(root_credential_missing_text(cluster))
    try:
        return pve_session.login(url=cluster.api_url, username=pve_session.ROOT, password=cluster.root_password,
                                 timeout=timeout, **_tls(cluster.tls_mode, cluster.ca_cert, cluster.fingerprint))
    except ProxmoxAuthError as exc:
        raise ProxmoxAuthError(f"{exc}: the root@pam credential of cluster {cluster.name} no longer works; an "
                               f"operator enters the current password in the cluster's settings",
                               status=exc.status) from exc


def root_credential_check(*, api_url: str, tls_mode: str, ca_cert: str = "", fingerprint: str = "",
                          password: str) -> None:
    """Log in as root@pam with `password` (POST /access/ticket, TLS as the cluster's); field
    errors on `root_password` when Proxmox refuses it. Saves nothing."""
    try:
        client = pve_session.login(url=api_url, username=pve_session.ROOT, password=password,
                                   timeout=PROBE_TIMEOUT, **_tls(tls_mode, ca_cert, fingerprint))
    except ProxmoxAuthError as exc:
        raise _field_error("root_password", f"{exc}. Enter root@pam's current password (the Linux root password "
                                            "of the nodes).") from exc
    except ProxmoxTLSError as exc:
        raise _field_error("root_password", f"Not sent: {exc}") from exc
    except ProxmoxError as exc:
        raise _field_error("root_password", f"Could not test the root@pam login: {exc}") from exc
    client.close()


def connect_values(*, api_url, token_id, token_secret, tls_mode, ca_cert="", fingerprint="", timeout=None):
    if tls_mode == TlsMode.PIN:
        return proxmox.connect(url=api_url, token_id=token_id, token_secret=token_secret,
                               fingerprint=fingerprint, timeout=timeout)
    verify = False if tls_mode == TlsMode.INSECURE else (ca_cert.strip() or True)
    return proxmox.connect(url=api_url, token_id=token_id, token_secret=token_secret, verify=verify, timeout=timeout)


def _field_error(field: str, message: str) -> ValidationError:
    return ValidationError({field: [message]})


def cluster_fetch_fingerprint(*, api_url: str) -> str:
    """The SHA-256 fingerprint the server at `api_url` presents (first contact); field errors on failure."""
    try:
        return proxmox.fetch_fingerprint(api_url, timeout=PROBE_TIMEOUT)
    except ValueError as exc:
        raise _field_error("api_url", str(exc)) from exc
    except ProxmoxError as exc:
        raise _field_error("api_url", f"Cannot reach the server: {exc}") from exc


def cluster_probe(*, api_url: str, token_id: str, token_secret: str, tls_mode: str,
                  ca_cert: str = "", fingerprint: str = "") -> Probe:
    """Test a connection with GET /version and GET /cluster/status.

    Raises ValidationError keyed by the field at fault: api_url (DNS, refused, timeout, bad URL),
    fingerprint / ca_cert (TLS), token_secret (401), token_id (403 naming the missing privilege),
    or FingerprintConfirmationRequired in pin mode without a fingerprint. Saves nothing.
    """
    if tls_mode == TlsMode.PIN:
        if not fingerprint:
            raise FingerprintConfirmationRequired(cluster_fetch_fingerprint(api_url=api_url), api_url)
        try:
            fingerprint = proxmox.normalize_fingerprint(fingerprint)
        except ValueError as exc:
            raise _field_error("fingerprint", str(exc)) from exc
    try:
        client = connect_values(api_url=api_url, token_id=token_id, token_secret=token_secret, tls_mode=tls_mode,
                                ca_cert=ca_cert, fingerprint=fingerprint, timeout=PROBE_TIMEOUT)
    except ValueError as exc:
        field = "token_id" if "token_id" in str(exc) else "api_url"
        raise _field_error(field, str(exc)) from exc
    try:
        with client:
            version = pve_nodes.version(client)
            status = pve_cluster.status(client)
    except ProxmoxTLSError as exc:
        field = {TlsMode.PIN: "fingerprint", TlsMode.VERIFY: "ca_cert"}.get(tls_mode, "api_url")
        raise _field_error(field, str(exc)) from exc
    except ProxmoxUnreachable as exc:
        raise _field_error("api_url", f"Cannot reach the server: {exc}") from exc
    except ProxmoxAuthError as exc:
        raise _field_error("token_secret", f"Proxmox rejected the API token (401 {exc}): check the token ID "
                                           "and secret, and that the token is not expired or disabled.") from exc
    except ProxmoxPermissionError as exc:
        missing = f" the privilege {exc.privilege} on {exc.path}" if exc.privilege else " a privilege"
        raise _field_error("token_id", f"The API token lacks{missing} (403 {exc}). Grant it, e.g. the "
                                       "PVEAuditor role on / for reading, PVEAdmin for actions.") from exc
    except ProxmoxError as exc:
        raise _field_error("api_url", f"Proxmox answered with an error: {exc}") from exc
    cluster_entry = next((item for item in status if item.get("type") == "cluster"), None)
    node_entries = [item for item in status if item.get("type") == "node"]
    return Probe(
        version=version["version"],
        cluster_name=(cluster_entry or {}).get("name") or (node_entries[0]["name"] if node_entries else ""),
        nodes=len(node_entries),
        quorate=bool((cluster_entry or {}).get("quorate", 1)),
        fingerprint=fingerprint,
        clustered=cluster_entry is not None,
    )


def _check_name(name: str, exclude_pk=None) -> None:
    qs = Cluster.objects.filter(name__iexact=name)
    if exclude_pk is not None:
        qs = qs.exclude(pk=exclude_pk)
    if qs.exists():
        raise _field_error("name", f"A cluster named '{name}' is already registered.")


def api_url_key(url: str) -> tuple[str, int, str]:
    """Host, port, path of a Proxmox API URL, so that 'https://PVE1:8006/' and 'pve1:8006' compare equal."""
    parts = urlsplit(url if "://" in url else f"https://{url}")
    path = parts.path.rstrip("/").removesuffix("/api2/json").rstrip("/")
    try:
        port = parts.port or 443
    except ValueError:
        port = 0
    return ((parts.hostname or "").lower().rstrip("."), port, path)


def _check_not_registered(*, api_url: str, probe: Probe | None = None, exclude_pk=None) -> None:
    """One registration per Proxmox cluster: the same URL, or the same cluster name as reported by
    /cluster/status, would double the inventory and the polling."""
    others = Cluster.objects.exclude(pk=exclude_pk) if exclude_pk is not None else Cluster.objects.all()
    key = api_url_key(api_url)
    for other in others.only("pk", "name", "api_url"):
        if api_url_key(other.api_url) == key:
            raise _field_error("api_url", f"This Proxmox API is already registered as cluster '{other.name}' "
                                          f"({other.api_url}).")
    if probe is not None and probe.clustered and probe.cluster_name:
        other = others.filter(pve_cluster_name=probe.cluster_name).only("name", "api_url").first()
        if other is not None:
            raise _field_error("api_url", f"The server at {api_url} belongs to the Proxmox cluster "
                                          f"'{probe.cluster_name}', already registered as cluster '{other.name}' "
                                          f"({other.api_url}).")


def cluster_create(*, user, request=None, name: str = "", api_url: str, token_id: str, token_secret: str,
                   tls_mode: str, ca_cert: str = "", fingerprint: str = "",
                   sync_interval_active=None, sync_interval_idle=None, root_password: str = "") -> Cluster:
    """Register a cluster after a successful connection test, then queue its first sync.

    Nothing is saved when the test fails (ValidationError with field errors, see cluster_probe),
    nor when an optional `root_password` does not log in as root@pam. `name` defaults to
    Proxmox's cluster name. Audited; the secrets never reach the log.
    """
    try:
        if name:
            _check_name(name)
        _check_not_registered(api_url=api_url)
        probe = cluster_probe(api_url=api_url, token_id=token_id, token_secret=token_secret, tls_mode=tls_mode,
                              ca_cert=ca_cert, fingerprint=fingerprint)
        _check_not_registered(api_url=api_url, probe=probe)
        if root_password:
            root_credential_check(api_url=api_url, tls_mode=tls_mode, ca_cert=ca_cert,
                                  fingerprint=probe.fingerprint, password=root_password)
    except ValidationError as exc:
        audit_log(user=user, action="nodes.cluster_create", target=name or api_url, result=AuditResult.FAILURE,
                  request=request, detail={"api_url": api_url, "errors": exc.message_dict})
        raise
    name = name or probe.cluster_name or api_url
    _check_name(name)
    with transaction.atomic():
        cluster = Cluster.objects.create(
            name=name, api_url=api_url, token_id=token_id, token_secret=token_secret, tls_mode=tls_mode,
            ca_cert=ca_cert if tls_mode == TlsMode.VERIFY else "",
            fingerprint=probe.fingerprint if tls_mode == TlsMode.PIN else "",
            pve_cluster_name=probe.cluster_name, pve_version=probe.version, quorate=probe.quorate,
            status=ClusterStatus.PENDING, next_sync_at=timezone.now(),
            sync_interval_active=sync_interval_active, sync_interval_idle=sync_interval_idle,
            root_password=root_password or None,
        )
        audit_log(user=user, action="nodes.cluster_create", target=cluster, result=AuditResult.SUCCESS,
                  request=request, detail={"api_url": api_url, "tls_mode": tls_mode, "version": probe.version,
                                           "root_credential": bool(root_password)})
        transaction.on_commit(lambda: cluster_sync_request(cluster=cluster))
    return cluster


def cluster_update(*, cluster: Cluster, user, request=None, **changes) -> Cluster:
    """Change a cluster; when a connection field changes the new values are tested first
    (same errors as cluster_probe, nothing saved on failure). An empty token_secret keeps the old one.
    `root_password` (optional root@pam credential): a new one is tested by logging in (field error
    `root_password` when refused, nothing saved); empty keeps the stored one; `forget_root_password`
    removes it."""
    if not changes.get("token_secret"):
        changes.pop("token_secret", None)
    root_password = changes.pop("root_password", None) or ""
    forget_root = bool(changes.pop("forget_root_password", False))
    if "name" in changes and not changes["name"]:
        changes.pop("name")  # an empty name keeps the current one
    if "name" in changes and changes["name"] != cluster.name:
        _check_name(changes["name"], exclude_pk=cluster.pk)
    connection = {f: changes.get(f, getattr(cluster, f)) for f in CONNECTION_FIELDS}
    if any(f in changes and changes[f] != getattr(cluster, f) for f in CONNECTION_FIELDS):
        if connection["tls_mode"] != TlsMode.PIN:
            connection["fingerprint"] = ""
        _check_not_registered(api_url=connection["api_url"], exclude_pk=cluster.pk)
        probe = cluster_probe(**connection)
        _check_not_registered(api_url=connection["api_url"], probe=probe, exclude_pk=cluster.pk)
        changes["fingerprint"] = probe.fingerprint
        changes.update(status=ClusterStatus.PENDING, failures=0, last_error="", next_sync_at=timezone.now())
    if root_password:
        root_credential_check(api_url=connection["api_url"], tls_mode=connection["tls_mode"],
                              ca_cert=connection["ca_cert"],
                              fingerprint=changes.get("fingerprint", connection["fingerprint"]), password=root_password)
        changes["root_password"] = root_password
    elif forget_root and cluster.root_password:
        changes["root_password"] = None
    with transaction.atomic():
        for field, value in changes.items():
            setattr(cluster, field, value)
        cluster.save()
        audit_log(user=user, action="nodes.cluster_update", target=cluster, result=AuditResult.SUCCESS,
                  request=request, detail={"fields": sorted(k for k in changes if k != "token_secret")})
    return cluster


def cluster_delete(*, cluster: Cluster, user, request=None) -> None:
    """Forget a cluster and its inventory (Proxmox itself is untouched)."""
    with transaction.atomic():
        audit_log(user=user, action="nodes.cluster_delete", target=cluster, result=AuditResult.SUCCESS, request=request)
        cluster.delete()


def cluster_sync_request(*, cluster: Cluster, user=None, request=None) -> bool:
    """Queue a sync of `cluster` now (deduplicated: False when one is already queued)."""
    from .tasks import enqueue_sync

    if user is not None:
        audit_log(user=user, action="nodes.cluster_sync", target=cluster, result=AuditResult.ACCEPTED, request=request)
    return enqueue_sync(cluster.pk, force=True)
