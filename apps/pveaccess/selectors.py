"""Reads for operators (and auditors): which clusters' Proxmox access they may manage, and what
Proxmox holds (read live, never stored: Proxmox is the truth). Anyone else gets 404."""

from __future__ import annotations

from apps.nodes.models import Cluster
from apps.nodes.selectors import cluster_get, cluster_list
from apps.permissions import policy


def may_view(user) -> bool:
    return policy.can(user, "pveaccess.view")


def access_clusters(*, user) -> list[Cluster]:
    """Clusters whose access control `user` may see (none for tenants)."""
    if not may_view(user):
        return []
    return list(cluster_list(user=user))


def access_cluster(*, user, pk) -> Cluster:
    """The cluster `pk` when `user` may see its access control; NotVisible (404) otherwise."""
    cluster = cluster_get(user=user, pk=pk) if may_view(user) else None
    if cluster is None:
        raise policy.NotVisible("no such cluster")
    return cluster
