"""Which URLs a tenant may have Proxmox download: http(s) to public addresses only.

"Download from URL" runs on the Proxmox node with the portal's token, inside the datacenter's
network; a tenant must not use it to reach what only that network can (the node itself, other
hosts on private ranges, cloud metadata services). The host is resolved here and every address it
resolves to must be public: not loopback, link-local, private, carrier-grade NAT, multicast,
reserved, unspecified or a metadata address, in IPv4 or IPv6 (IPv4-mapped, 6to4 and Teredo
addresses are judged by the IPv4 address inside). Operators may open networks to tenants with the
setting DOWNLOAD_URL_ALLOWED_NETWORKS (CIDRs, e.g. a mirror on 10.0.5.0/24).

Proxmox resolves the name again when it fetches: a name that changes its answer in between (DNS
rebinding) is not caught here; the node's own firewall is the second line.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Callable
from urllib.parse import urlsplit

from django.conf import settings
from django.core.exceptions import ValidationError

SCHEMES = ("http", "https")
CGNAT = ipaddress.ip_network("100.64.0.0/10")
NAT64 = ipaddress.ip_network("64:ff9b::/96")  # the well-known prefix: an IPv4 address in the last 32 bits
# Metadata services of the clouds a Proxmox node may run in (most sit in ranges refused anyway).
METADATA = tuple(ipaddress.ip_network(n) for n in (
    "169.254.169.254/32", "169.254.170.2/32", "100.100.100.200/32", "192.0.0.192/32", "fd00:ec2::254/128",
))
Address = ipaddress.IPv4Address | ipaddress.IPv6Address


def allowed_networks() -> list:
    """DOWNLOAD_URL_ALLOWED_NETWORKS as networks (a bad entry is a configuration error at use)."""
    return [ipaddress.ip_network(str(n).strip(), strict=False)
            for n in getattr(settings, "DOWNLOAD_URL_ALLOWED_NETWORKS", []) or [] if str(n).strip()]


def _embedded_ipv4(address: Address) -> ipaddress.IPv4Address | None:
    if address.version != 6:
        return None
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address.sixtofour is not None:
        return address.sixtofour
    if address.teredo is not None:
        return address.teredo[1]  # (server, client): the client is who is reached
    if address in NAT64:
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return None


def refusal(address: Address) -> str | None:
    """Why `address` is not public (None: it is)."""
    inner = _embedded_ipv4(address)
    if inner is not None:
        reason = refusal(inner)
        return f"{reason} (inside the IPv6 address {address})" if reason else None
    checks = (
        (any(address in net for net in METADATA), "a cloud metadata address"),
        (address.is_loopback, "a loopback address"),
        (address.is_unspecified, "an unspecified address"),
        (address.is_link_local, "a link-local address"),
        (address.is_multicast, "a multicast address"),
        (address.version == 4 and address in CGNAT, "a carrier-grade NAT (shared) address"),
        (address.is_reserved, "a reserved address"),
        (address.is_private, "a private address"),
        (not address.is_global, "not a public address"),
    )
    return next((reason for refused, reason in checks if refused), None)


def _resolve(host: str, port: int, resolver: Callable) -> list[Address]:
    try:
        infos = resolver(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError, OSError) as exc:
        raise ValidationError({"url": [f"the host {host!r} cannot be resolved ({exc})"]}) from None
    return sorted({ipaddress.ip_address(info[4][0].split("%", 1)[0]) for info in infos}, key=str)


def check_public_url(url: str, *, resolver: Callable = socket.getaddrinfo) -> None:
    """Raise ValidationError on `url` unless it is http(s) and every address its host resolves to is
    public or in DOWNLOAD_URL_ALLOWED_NETWORKS."""
    try:
        parts = urlsplit(url or "")
        port = parts.port
    except ValueError as exc:
        raise ValidationError({"url": [f"not a valid address: {exc}"]}) from None
    if parts.scheme.lower() not in SCHEMES:
        raise ValidationError({"url": ["only http:// and https:// addresses may be downloaded"]})
    host = parts.hostname
    if not host:
        raise ValidationError({"url": ["the address names no host"]})
    port = port or (443 if parts.scheme.lower() == "https" else 80)
    try:
        addresses, literal = [ipaddress.ip_address(host)], True
    except ValueError:
        addresses, literal = _resolve(host, port, resolver), False
    if not addresses:
        raise ValidationError({"url": [f"the host {host!r} resolves to no address"]})
    opened = allowed_networks()
    for address in addresses:
        if any(address.version == net.version and address in net for net in opened):
            continue
        reason = refusal(address)
        if reason:
            named = host if literal else f"{host} resolves to {address}, which"
            raise ValidationError({"url": [f"{named} is {reason}: downloads may only come from public addresses"]})
