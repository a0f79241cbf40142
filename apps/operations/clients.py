"""Where operations gets a Proxmox client for a cluster id, without importing apps.nodes.

apps.nodes (above us) registers the factory in its AppConfig.ready:
    set_client_factory(lambda cluster_id: Cluster.objects.get(pk=cluster_id).client())
"""

from __future__ import annotations

from typing import Callable

from apps.proxmox import ProxmoxClient

ClientFactory = Callable[[int | None], ProxmoxClient]
_factory: ClientFactory | None = None


def set_client_factory(factory: ClientFactory | None) -> ClientFactory | None:
    """Install `factory` and return the previous one (tests swap and restore it)."""
    global _factory
    previous, _factory = _factory, factory
    return previous


def client_for(cluster_id: int | None) -> ProxmoxClient:
    if _factory is None:
        raise RuntimeError("no Proxmox client factory registered (apps.nodes registers it in ready())")
    return _factory(cluster_id)
