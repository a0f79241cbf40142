"""Intrusion prevention (Suricata) through the cluster's SSH channel.

Proxmox has no API for it: a guest's `ips`/`ips_queues` live only in its firewall file, and the
alerts in each node's eve.json. apps.proxmox.nodefs reaches both over SSH; this module decides who
may, which node to ask, pins host keys, and stores the alerts.

- The channel (`SshChannel`, one per cluster, operators): a key pair the portal makes (private
  half encrypted, never returned), per node an address and a pinned host key (`NodeHost`), pinned
  at first use when the channel allows it (audited), pasted, or read and confirmed by an operator.
- IPS per guest: whoever may see the guest reads the state (`firewall.view`), its tenant's members
  and operators switch it (`firewall.edit`): the `[OPTIONS]` lines of /etc/pve/firewall/<vmid>.fw
  change and nothing else, written atomically and refused when the file changed since it was read
  (or since the page showed it, with `digest`). Every switch is audited, failures too.
- Alerts: `alerts_ingest` reads each node's eve.json from where it stopped, keeps `alert` events,
  finds the guest each concerns (MAC of the packet, else IP, from the guests' configs), stores them
  once (a line read twice is stored once) and pushes the guest pages. Tenants see their guests'
  alerts only (scoped like guests), operators and auditors all.

Without a channel, or with it switched off, every IPS call answers why (`unavailable_reason`).
"""

from __future__ import annotations

import hashlib
import ipaddress
import logging
import re
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import timedelta

from django.conf import settings
from django.core.cache import cache
from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import Count
from django.db.models.functions import TruncHour
from django.utils import timezone

from apps.core.models import AuditResult
from apps.core.services import audit_log
from apps.permissions.policy import check, visible
from apps.proxmox import ProxmoxError, nodefs

from .models import IpsAlert, NodeHost, SshChannel

log = logging.getLogger(__name__)

INGEST_LOCK_SECONDS = 300
MAX_BATCHES_PER_NODE = 8  # EVE chunks per node and run; the rest waits for the next run
CONFIG_FETCH_LIMIT = 50  # guest configs read from Proxmox per run to place unmatched alerts
CONFIG_CACHE_SECONDS = 600
MAX_NODES_TRIED = 3  # a page waits for at most this many unreachable nodes before saying so
_MAC_RE = re.compile(r"(?:^|,)[a-z0-9]+=([0-9A-Fa-f]{2}(?::[0-9A-Fa-f]{2}){5})(?=,|$)")
_IP_RE = re.compile(r"(?:^|,)ip6?=([0-9A-Fa-f.:]+)(?:/\d+)?(?=,|$)")


class IpsUnavailable(Exception):
    """IPS cannot be reached for this cluster or node; `reason` says why, in words."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


class IpsRefused(Exception):
    """The change was not made: `message` says why; `status` 409 (conflict, unavailable) or 502."""

    def __init__(self, message: str, status: int = 409):
        super().__init__(message)
        self.message, self.status = message, status


# -- the channel ----------------------------------------------------------------------------------

def channel_of(cluster) -> SshChannel | None:
    return SshChannel.objects.filter(cluster=cluster).first()


def unavailable_reason(cluster, channel: SshChannel | None = None) -> str:
    """Why IPS cannot be used on `cluster` now ("" when it can)."""
    channel = channel if channel is not None else channel_of(cluster)
    if channel is None:
        return (f"Proxmox has no API for IPS (Suricata): it is switched on in each guest's firewall file on the "
                f"cluster file system, which the portal reaches only through an SSH channel to the nodes, and no "
                f"SSH channel is configured for cluster {cluster}. An operator sets one up on the cluster's "
                f"firewall SSH channel page.")
    if not channel.enabled:
        return f"The SSH channel to the nodes of cluster {cluster} is switched off by an operator."
    return ""


def _host(channel: SshChannel, node: str) -> NodeHost:
    host, _ = NodeHost.objects.get_or_create(channel=channel, node=node)
    return host


def _node_address(channel: SshChannel, node: str) -> str:
    from apps.nodes.models import Node

    found = Node.objects.filter(cluster_id=channel.cluster_id, name=node).values_list("ip", flat=True).first()
    return found or ""


def endpoint_for(channel: SshChannel, node: str, host: NodeHost | None = None) -> nodefs.Endpoint:
    host = host or _host(channel, node)
    address = host.address or _node_address(channel, node)
    if not address:
        raise IpsUnavailable(f"Node {node} has no known address: an operator sets it on the SSH channel page.")
    if not host.host_key and not channel.trust_on_first_use:
        raise IpsUnavailable(f"The host key of node {node} is not pinned, and the channel does not trust a "
                             f"node's key on first use: an operator pins it on the SSH channel page.")
    return nodefs.Endpoint(node=node, host=address, port=host.port or channel.port, username=channel.username,
                           private_key=channel.private_key, host_key=host.host_key)


def _open(channel: SshChannel, node: str, *, user=None) -> nodefs.Session:
    """A logged-in session to `node`; a first-use host key is pinned (and audited) once the login
    worked. Raises IpsUnavailable or nodefs' SshError."""
    host = _host(channel, node)
    endpoint = endpoint_for(channel, node, host)
    session = nodefs.open_session(endpoint)
    if not endpoint.host_key and session.presented_host_key:
        try:
            _pin(host, session.presented_host_key, NodeHost.Pinned.TOFU, user=user)
        except BaseException:
            session.close()
            raise
    return session


@contextmanager
def node_session(channel: SshChannel, node: str, *, user=None):
    session = _open(channel, node, user=user)
    try:
        yield session
    finally:
        session.close()


def _pin(host: NodeHost, key: str, how: str, *, user=None) -> None:
    host.host_key, host.pinned_how, host.pinned_at = key, how, timezone.now()
    host.save(update_fields=["host_key", "pinned_how", "pinned_at"])
    audit_log(user=user, action="firewall.ssh_host_pinned", target=host.channel.cluster, result=AuditResult.SUCCESS,
              detail={"node": host.node, "fingerprint": nodefs.fingerprint(key), "how": how})


def _nodes_to_try(channel: SshChannel, first: str | None) -> list[str]:
    """The guest's node first, then the cluster's other online nodes: /etc/pve is the same on all."""
    from apps.nodes.models import Node

    names = list(Node.objects.filter(cluster_id=channel.cluster_id).order_by("-online", "name")
                 .values_list("name", flat=True))
    if first:
        names = [first] + [n for n in names if n != first]
    return names


@contextmanager
def cluster_session(channel: SshChannel, prefer: str | None = None, *, user=None):
    """A session to the first node that answers, `prefer` first (for /etc/pve, the same on all)."""
    last: Exception | None = None
    for node in _nodes_to_try(channel, prefer)[:MAX_NODES_TRIED]:
        try:
            session = _open(channel, node, user=user)
        except (nodefs.SshUnreachable, IpsUnavailable) as exc:
            last = exc
            continue
        try:
            yield session
        finally:
            session.close()
        return
    raise last or IpsUnavailable("The cluster has no nodes known to the portal yet.")


def _message(exc: Exception) -> str:
    return getattr(exc, "reason", None) or getattr(exc, "message", None) or str(exc)


# -- IPS of a guest -------------------------------------------------------------------------------

@dataclass
class IpsState:
    """What the guest's firewall file says about IPS, or why it cannot be read."""

    available: bool
    reason: str = ""  # why IPS is unavailable (no channel, channel off)
    error: str = ""  # why the file could not be read now (node unreachable, key refused...)
    enabled: bool = False
    queues: str = ""
    exists: bool = False
    digest: str = ""
    node: str = ""
    options: dict = field(default_factory=dict)

    def as_dict(self) -> dict:
        return {"available": self.available, "reason": self.reason, "error": self.error, "enabled": self.enabled,
                "queues": self.queues, "file_exists": self.exists, "digest": self.digest, "read_from": self.node}


def ips_read(*, user, guest) -> IpsState:
    check(user, "firewall.view", guest)
    channel = channel_of(guest.cluster)
    reason = unavailable_reason(guest.cluster, channel)
    if reason:
        return IpsState(available=False, reason=reason)
    try:
        with cluster_session(channel, guest.node.name if guest.node_id else None, user=user) as session:
            found = nodefs.read_guest_firewall(session, guest.vmid)
            node = session.endpoint.node
    except (IpsUnavailable, ProxmoxError) as exc:
        return IpsState(available=True, error=_message(exc))
    return IpsState(available=True, enabled=found.ips, queues=found.ips_queues, exists=found.exists,
                    digest=found.digest, node=node, options=found.options)


def ips_set(*, user, guest, enabled: bool, queues: str | None = None, digest: str | None = None) -> IpsState:
    """Switch Suricata on or off for the guest (and set its NFQUEUE queues: "" removes the line,
    None leaves it). Audited, failures too."""
    check(user, "firewall.edit", guest)
    channel = channel_of(guest.cluster)
    reason = unavailable_reason(guest.cluster, channel)
    if reason:
        raise IpsRefused(reason)
    if queues:
        try:
            queues = nodefs.check_ips_queues(queues)
        except ValueError as exc:
            raise ValidationError({"queues": [str(exc)]}) from None
    action = "firewall.ips_enable" if enabled else "firewall.ips_disable"
    detail = {"vmid": guest.vmid, "file": nodefs.guest_firewall_path(guest.vmid), "ips": int(bool(enabled)),
              **({"ips_queues": queues} if queues is not None else {})}
    try:
        with cluster_session(channel, guest.node.name if guest.node_id else None, user=user) as session:
            before, after = nodefs.set_guest_ips(session, guest.vmid, enabled=enabled, queues=queues,
                                                 expected_digest=digest or None)
            node = session.endpoint.node
    except (IpsUnavailable, ProxmoxError) as exc:
        status = 409 if isinstance(exc, (nodefs.FileChanged, IpsUnavailable)) else 502
        words = "switch IPS on" if enabled else "switch IPS off"
        message = f"Could not {words} for {guest.kind} {guest}: {_message(exc)}"
        audit_log(user=user, action=action, target=guest, result=AuditResult.FAILURE,
                  detail={**detail, "error": message[:500]})
        raise IpsRefused(message, status=status) from exc
    audit_log(user=user, action=action, target=guest, result=AuditResult.SUCCESS,
              detail={**detail, "node": node, "before": {k: before.options.get(k, "") for k in ("ips", "ips_queues")},
                      "after": {k: after.options.get(k, "") for k in ("ips", "ips_queues")}})
    return IpsState(available=True, enabled=after.ips, queues=after.ips_queues, exists=after.exists,
                    digest=after.digest, node=node, options=after.options)


# -- channel management (operators) ---------------------------------------------------------------

def _key_comment(cluster) -> str:
    return f"datacenter-portal@{re.sub(r'[^A-Za-z0-9_.-]', '-', cluster.name)}"


def channel_create(*, user, cluster, username: str = "root", port: int = 22,
                   trust_on_first_use: bool = True) -> SshChannel:
    check(user, "firewall.manage", cluster)
    if channel_of(cluster) is not None:
        raise ValidationError({"__all__": ["this cluster already has an SSH channel"]})
    username, port = _clean_login(username, port)
    pair = nodefs.generate_key(_key_comment(cluster))
    channel = SshChannel.objects.create(cluster=cluster, username=username, port=port, private_key=pair.private,
                                        public_key=pair.public, key_fingerprint=pair.fingerprint,
                                        trust_on_first_use=trust_on_first_use, key_created=timezone.now())
    audit_log(user=user, action="firewall.ssh_channel_create", target=cluster, result=AuditResult.SUCCESS,
              detail={"fingerprint": pair.fingerprint, "username": username, "port": port,
                      "trust_on_first_use": trust_on_first_use})
    return channel


def _clean_login(username, port) -> tuple[str, int]:
    errors = {}
    username = (username or "root").strip()
    if not re.fullmatch(r"[a-z_][a-z0-9_.-]{0,31}", username):
        errors["username"] = ["a Unix user name, such as root"]
    try:
        port = int(port)
        if not 1 <= port <= 65535:
            raise ValueError
    except (TypeError, ValueError):
        errors["port"] = ["a port number, 1-65535"]
    if errors:
        raise ValidationError(errors)
    return username, port


def channel_update(*, user, channel: SshChannel, **values) -> SshChannel:
    """Change `enabled`, `username`, `port`, `trust_on_first_use` (those given)."""
    check(user, "firewall.manage", channel.cluster)
    username, port = _clean_login(values.get("username", channel.username), values.get("port", channel.port))
    changed = {}
    for name, value in (("username", username), ("port", port),
                        ("enabled", bool(values.get("enabled", channel.enabled))),
                        ("trust_on_first_use", bool(values.get("trust_on_first_use", channel.trust_on_first_use)))):
        if getattr(channel, name) != value:
            changed[name] = value
            setattr(channel, name, value)
    if changed:
        channel.save(update_fields=list(changed))
        audit_log(user=user, action="firewall.ssh_channel_update", target=channel.cluster,
                  result=AuditResult.SUCCESS, detail=changed)
    return channel


def channel_new_key(*, user, channel: SshChannel) -> SshChannel:
    """A new key pair; the old one stops working once the operator removes it from the nodes."""
    check(user, "firewall.manage", channel.cluster)
    pair = nodefs.generate_key(_key_comment(channel.cluster))
    old = channel.key_fingerprint
    channel.private_key, channel.public_key, channel.key_fingerprint = pair.private, pair.public, pair.fingerprint
    channel.key_created = timezone.now()
    channel.save(update_fields=["private_key", "public_key", "key_fingerprint", "key_created"])
    audit_log(user=user, action="firewall.ssh_channel_key", target=channel.cluster, result=AuditResult.SUCCESS,
              detail={"old_fingerprint": old, "fingerprint": pair.fingerprint})
    return channel


def channel_delete(*, user, channel: SshChannel) -> None:
    check(user, "firewall.manage", channel.cluster)
    cluster = channel.cluster
    fingerprint = channel.key_fingerprint
    channel.delete()
    audit_log(user=user, action="firewall.ssh_channel_delete", target=cluster, result=AuditResult.SUCCESS,
              detail={"fingerprint": fingerprint})


def host_update(*, user, channel: SshChannel, node: str, address: str | None = None, port=None,
                host_key: str | None = None) -> NodeHost:
    """A node's address and port (empty: Proxmox's address, the channel's port), and a pasted host key."""
    check(user, "firewall.manage", channel.cluster)
    _require_node(channel, node)
    host = _host(channel, node)
    errors, changed = {}, {}
    if address is not None:
        address = address.strip()
        if address and not re.fullmatch(r"[A-Za-z0-9.:\[\]_-]{1,255}", address):
            errors["address"] = ["a host name or an IP address"]
        elif address != host.address:
            host.address = changed["address"] = address.strip("[]")
    if port not in (None, ""):
        try:
            value = int(port)
            if not 1 <= value <= 65535:
                raise ValueError
        except (TypeError, ValueError):
            errors["port"] = ["a port number, 1-65535"]
        else:
            if value != host.port:
                host.port = changed["port"] = value
    elif port == "" and host.port is not None:
        host.port = changed["port"] = None
    if errors:
        raise ValidationError(errors)
    if changed:
        host.save(update_fields=list(changed))
        audit_log(user=user, action="firewall.ssh_host_update", target=channel.cluster, result=AuditResult.SUCCESS,
                  detail={"node": node, **changed})
    if host_key:
        try:
            key = nodefs.normalize_host_key(host_key)
        except ValueError as exc:
            raise ValidationError({"host_key": [str(exc)]}) from None
        _pin(host, key, NodeHost.Pinned.PASTED, user=user)
    return host


def host_scan(*, user, channel: SshChannel, node: str) -> NodeHost:
    """Read the host key the node presents now and pin it (the operator compared its fingerprint)."""
    check(user, "firewall.manage", channel.cluster)
    _require_node(channel, node)
    host = _host(channel, node)
    address = host.address or _node_address(channel, node)
    if not address:
        raise IpsRefused(f"Node {node} has no known address: set one first.")
    try:
        key = nodefs.scan_host_key(address, host.port or channel.port)
    except ProxmoxError as exc:
        raise IpsRefused(f"Could not read the host key of node {node}: {_message(exc)}", status=502) from exc
    _pin(host, key, NodeHost.Pinned.SCANNED, user=user)
    return host


def host_forget(*, user, channel: SshChannel, node: str) -> NodeHost:
    check(user, "firewall.manage", channel.cluster)
    host = _host(channel, node)
    old = host.host_key
    host.host_key, host.pinned_how, host.pinned_at = "", "", None
    host.save(update_fields=["host_key", "pinned_how", "pinned_at"])
    audit_log(user=user, action="firewall.ssh_host_forget", target=channel.cluster, result=AuditResult.SUCCESS,
              detail={"node": node, **({"fingerprint": nodefs.fingerprint(old)} if old else {})})
    return host


def _require_node(channel: SshChannel, node: str) -> None:
    from apps.nodes.models import Node

    if not Node.objects.filter(cluster_id=channel.cluster_id, name=node).exists():
        raise ValidationError({"node": [f"no node '{node}' in cluster {channel.cluster}"]})


def channel_test(*, user, channel: SshChannel) -> dict[str, str]:
    """Log in to every node: node -> "ok" or what went wrong (audited)."""
    check(user, "firewall.manage", channel.cluster)
    results = {}
    for node in _nodes_to_try(channel, None):
        try:
            with node_session(channel, node, user=user) as session:
                session.size(nodefs.GUEST_FIREWALL_DIR)
            results[node] = "ok"
        except (IpsUnavailable, ProxmoxError) as exc:
            results[node] = _message(exc)
    ok = all(v == "ok" for v in results.values())
    channel.last_error = "" if ok else "; ".join(f"{n}: {m}" for n, m in results.items() if m != "ok")[:2000]
    if ok:
        channel.last_ok_at = timezone.now()
    channel.save(update_fields=["last_error", "last_ok_at"])
    audit_log(user=user, action="firewall.ssh_channel_test", target=channel.cluster,
              result=AuditResult.SUCCESS if ok else AuditResult.FAILURE, detail={"nodes": results})
    return results


def hosts_view(channel: SshChannel) -> list[dict]:
    """Every node of the cluster with how the channel reaches it (for the channel page and API)."""
    from apps.nodes.models import Node

    hosts = {h.node: h for h in channel.hosts.all()}
    out = []
    for node in Node.objects.filter(cluster_id=channel.cluster_id).order_by("name"):
        host = hosts.get(node.name)
        key = host.host_key if host else ""
        out.append({
            "node": node.name, "address": host.address if host else "", "proxmox_address": node.ip or "",
            "port": host.port if host and host.port else None, "effective_port": (host.port if host else None)
            or channel.port, "host_key": key, "host_key_fingerprint": nodefs.fingerprint(key) if key else "",
            "pinned_how": host.get_pinned_how_display() if host and host.pinned_how else "",
            "pinned_at": host.pinned_at if host else None, "eve_offset": host.eve_offset if host else 0,
            "eve_read_at": host.eve_read_at if host else None, "eve_error": host.eve_error if host else "",
        })
    return out


# -- alerts ---------------------------------------------------------------------------------------

def _eui64_link_local(mac: str) -> str | None:
    try:
        parts = [int(x, 16) for x in mac.split(":")]
    except ValueError:
        return None
    if len(parts) != 6:
        return None
    parts[0] ^= 0x02
    eui = parts[:3] + [0xFF, 0xFE] + parts[3:]
    groups = [f"{eui[i] << 8 | eui[i + 1]:x}" for i in range(0, 8, 2)]
    return str(ipaddress.IPv6Address("fe80::" + ":".join(groups)))


def addresses_of(config: dict) -> tuple[set[str], set[str]]:
    """(MACs, IPs) a guest's config names: NICs' MACs (and their IPv6 link-local addresses),
    static IPs of cloud-init (`ipconfigN`) and container NICs (`netN`)."""
    macs, ips = set(), set()
    for key, value in (config or {}).items():
        if not re.fullmatch(r"(?:net|ipconfig)\d+", str(key)):
            continue
        text = str(value)
        if key.startswith("net"):
            for match in _MAC_RE.finditer(text):
                mac = match.group(1).lower()
                macs.add(mac)
                link_local = _eui64_link_local(mac)
                if link_local:
                    ips.add(link_local)
        for match in _IP_RE.finditer(text):
            try:
                ips.add(str(ipaddress.ip_address(match.group(1))))
            except ValueError:
                continue
    return macs, ips


class AddressIndex:
    """Which guest of a cluster a MAC or an IP belongs to (an IP two guests claim decides nothing,
    unless only one of them is on the node that saw the packet)."""

    def __init__(self, cluster):
        from apps.guests.models import Guest

        self.cluster = cluster
        self.guests = {g.pk: g for g in Guest.objects.filter(cluster=cluster).select_related("node")
                       .only("pk", "vmid", "type", "node__name", "config", "tenant_id")}
        self.macs: dict[str, set[int]] = {}
        self.ips: dict[str, set[int]] = {}
        self.fetched: set[int] = set()
        for guest in self.guests.values():
            self.learn(guest.pk, guest.config or cache.get(self._cache_key(guest.pk)) or {})

    def _cache_key(self, pk: int) -> str:
        return f"firewall:ips:config:{pk}"

    def learn(self, pk: int, config: dict) -> None:
        macs, ips = addresses_of(config)
        for mac in macs:
            self.macs.setdefault(mac, set()).add(pk)
        for ip in ips:
            self.ips.setdefault(ip, set()).add(pk)

    def _one(self, found: set[int] | None, node: str) -> int | None:
        if not found:
            return None
        if len(found) == 1:
            return next(iter(found))
        local = [pk for pk in found if self.guests[pk].node and self.guests[pk].node.name == node]
        return local[0] if len(local) == 1 else None

    def match(self, alert: dict, node: str) -> tuple[int | None, str, str]:
        """(guest pk, direction "in"/"out", matched by "mac"/"ip"); (None, "", "") when no guest's."""
        for key, direction in (("dest_mac", "in"), ("src_mac", "out")):
            pk = self._one(self.macs.get((alert.get(key) or "").lower()), node)
            if pk is not None:
                return pk, direction, "mac"
        for key, direction in (("dest_ip", "in"), ("src_ip", "out")):
            try:
                ip = str(ipaddress.ip_address(alert.get(key) or ""))
            except ValueError:
                continue
            pk = self._one(self.ips.get(ip), node)
            if pk is not None:
                return pk, direction, "ip"
        return None, "", ""

    def fetch_configs(self, node: str, limit: int) -> int:
        """Read from Proxmox the configs of the node's guests the portal has none of (cached a
        while), so alerts about them find their guest. Returns how many were read."""
        from apps.operations.clients import client_for
        from apps.proxmox import guests as pve_guests

        todo = [g for g in self.guests.values() if not g.config and g.pk not in self.fetched and g.node
                and g.node.name == node and cache.get(self._cache_key(g.pk)) is None][:limit]
        if not todo:
            return 0
        client = client_for(self.cluster.pk)
        try:
            for guest in todo:
                self.fetched.add(guest.pk)
                try:
                    config, _ = pve_guests.config(client, guest.ref)
                except ProxmoxError:
                    continue
                cache.set(self._cache_key(guest.pk), config, CONFIG_CACHE_SECONDS)
                self.learn(guest.pk, config)
        finally:
            client.close()
        return len(todo)


@dataclass
class IngestResult:
    cluster_id: int
    skipped: str = ""  # why nothing was read
    stored: int = 0
    seen: int = 0  # alert events read (stored or already there)
    unmatched: int = 0  # alerts no guest's
    broken: int = 0  # lines that were no JSON object
    nodes: dict = field(default_factory=dict)  # node -> "ok" or the error
    guests: set = field(default_factory=set)  # guest pks with new alerts


def alerts_ingest(cluster_id: int) -> IngestResult:
    """Read the new alerts of every node of the cluster (when its channel is configured and on)."""
    from apps.nodes.models import Cluster, Node

    result = IngestResult(cluster_id)
    channel = SshChannel.objects.select_related("cluster").filter(cluster_id=cluster_id).first()
    cluster = channel.cluster if channel else Cluster.objects.filter(pk=cluster_id).first()
    if cluster is None or channel is None or not channel.enabled:
        result.skipped = "no SSH channel" if channel is None else "channel off"
        return result
    lock = f"firewall:ips:ingest:{cluster_id}"
    if not cache.add(lock, 1, INGEST_LOCK_SECONDS):
        result.skipped = "another read is running"
        return result
    try:
        index = AddressIndex(cluster)
        for node in Node.objects.filter(cluster=cluster).order_by("name"):
            if not node.online and node.status == "offline":
                result.nodes[node.name] = "offline"
                continue
            result.nodes[node.name] = _ingest_node(channel, node.name, index, result)
    finally:
        cache.delete(lock)
    errors = {n: m for n, m in result.nodes.items() if m not in ("ok", "offline")}
    channel.last_error = "; ".join(f"{n}: {m}" for n, m in errors.items())[:2000]
    if not errors:
        channel.last_ok_at = timezone.now()
    channel.save(update_fields=["last_error", "last_ok_at"])
    if result.guests:
        transaction.on_commit(lambda: push_alerts(result.guests))
    return result


def _ingest_node(channel: SshChannel, node: str, index: AddressIndex, result: IngestResult) -> str:
    host = _host(channel, node)
    cursor = nodefs.EveCursor(offset=host.eve_offset, head=host.eve_head)
    try:
        with node_session(channel, node) as session:
            for _ in range(MAX_BATCHES_PER_NODE):
                read = nodefs.read_eve(session, cursor)
                _store(channel.cluster, node, read.lines, index, result)
                cursor = read.cursor
                NodeHost.objects.filter(pk=host.pk).update(eve_offset=cursor.offset, eve_head=cursor.head,
                                                           eve_read_at=timezone.now(), eve_error="")
                if not read.more:
                    break
    except (IpsUnavailable, ProxmoxError) as exc:
        message = _message(exc)
        NodeHost.objects.filter(pk=host.pk).update(eve_error=message[:2000])
        return message
    return "ok"


def _store(cluster, node: str, lines: list[str], index: AddressIndex, result: IngestResult) -> None:
    rows, unmatched = [], []
    for line in lines:
        event = nodefs.parse_event(line)
        if event is None:
            result.broken += 1
            continue
        alert = nodefs.parse_alert(event)
        if alert is None:
            continue
        result.seen += 1
        row = IpsAlert(
            cluster=cluster, node=node, timestamp=alert["timestamp"], signature=alert["signature"],
            signature_id=alert.get("signature_id"), category=alert.get("category", ""),
            severity=alert.get("severity"), action=alert.get("action", ""), proto=alert.get("proto", ""),
            src_ip=alert.get("src_ip", ""), src_port=alert.get("src_port"), dest_ip=alert.get("dest_ip", ""),
            dest_port=alert.get("dest_port"), flow_id=alert.get("flow_id"),
            line_hash=hashlib.sha256(line.encode()).hexdigest())
        pk, row.direction, row.matched_by = index.match(alert, node)
        row.guest_id = pk
        (rows if pk is not None else unmatched).append((row, alert))
    if unmatched and index.fetch_configs(node, CONFIG_FETCH_LIMIT):
        for row, alert in unmatched:
            row.guest_id, row.direction, row.matched_by = index.match(alert, node)
    result.unmatched += sum(1 for row, _ in unmatched if row.guest_id is None)
    all_rows = [row for row, _ in rows + unmatched]
    if not all_rows:
        return
    hashes = [row.line_hash for row in all_rows]
    known = set(IpsAlert.objects.filter(cluster=cluster, node=node, line_hash__in=hashes)
                .values_list("line_hash", flat=True))
    new = [row for row in all_rows if row.line_hash not in known]
    IpsAlert.objects.bulk_create(new, ignore_conflicts=True)
    result.stored += len(new)
    result.guests |= {row.guest_id for row in new if row.guest_id is not None}


def alerts_prune() -> int:
    days = getattr(settings, "IPS_ALERT_RETENTION_DAYS", 30)
    deleted, _ = IpsAlert.objects.filter(timestamp__lt=timezone.now() - timedelta(days=days)).delete()
    return deleted


# -- reading alerts -------------------------------------------------------------------------------

def alerts_visible(*, user):
    """The alerts `user` may see: tenants their guests' (scoped like the guests), operators all."""
    return visible(user, IpsAlert.objects.select_related("guest", "cluster"))


def alert_counts(queryset, *, hours: int = 24, now=None) -> dict:
    """Alerts per hour over the last `hours`: {"x": [unix seconds], "series": [[counts]], "total"}."""
    now = now or timezone.now()
    start = (now - timedelta(hours=hours - 1)).replace(minute=0, second=0, microsecond=0)
    counts = {row["hour"]: row["n"] for row in queryset.filter(timestamp__gte=start).order_by()
              .annotate(hour=TruncHour("timestamp")).values("hour").annotate(n=Count("id"))}
    xs, ys = [], []
    for i in range(hours):
        hour = start + timedelta(hours=i)
        xs.append(int(hour.timestamp()))
        ys.append(counts.get(hour, 0))
    return {"labels": ["alerts"], "x": xs, "series": [ys], "total": sum(ys)}


def push_alerts(guest_ids) -> None:
    """Tell the open pages of these guests about their new alerts (a fragment swapped in by id)."""
    from django.template.loader import render_to_string

    from apps.core import live
    from apps.guests.models import Guest

    for guest in Guest.objects.filter(pk__in=list(guest_ids)).select_related("cluster"):
        alerts = IpsAlert.objects.filter(guest=guest)
        html = render_to_string("firewall/partials/ips_alerts.html", {
            "guest": guest, "alerts": list(alerts[:20]), "counts": alert_counts(alerts), "oob": True})
        live.push(f"guest-{guest.pk}", html=html, data={"type": "firewall.ips_alerts", "id": guest.pk})
