"""Resource pools as the portal's tenancy uses them: which exist, and creating one.

A tenant owns one pool per cluster (apps.permissions); the portal creates it when an operator
assigns a pool that Proxmox does not have yet. The full read of pools with their members is
apps.proxmox.access.pools (Proxmox access management)."""

from __future__ import annotations

import re

from .errors import ProxmoxValidationError

# pve-poolid: letters, digits, '.', '-', '_' (a '/' nests a pool under an existing one; not used here)
POOLID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


def poolid_error(poolid: str) -> str | None:
    """Why `poolid` is not a pool id the portal creates (None: it is one)."""
    if not POOLID.match(poolid or ""):
        return "letters, digits, '.', '-' and '_' only, starting with a letter or digit, at most 64 characters"
    return None


def pool_ids(client) -> set[str]:
    """Ids of the cluster's pools (GET /pools: `poolid` is the only field every item promises)."""
    return {str(item["poolid"]) for item in client.get("pools") or [] if item.get("poolid")}


def pool_create(client, poolid: str, *, comment: str = "") -> None:
    """POST /pools. ProxmoxValidationError when Proxmox refuses it (e.g. it exists meanwhile)."""
    error = poolid_error(poolid)
    if error:
        raise ProxmoxValidationError(f"poolid: {error}")
    client.post("pools", poolid=poolid, **({"comment": comment} if comment else {}))


def pool_ensure(client, poolid: str, *, comment: str = "") -> bool:
    """The pool exists afterwards; True when this call created it."""
    if poolid in pool_ids(client):
        return False
    pool_create(client, poolid, comment=comment)
    return True
