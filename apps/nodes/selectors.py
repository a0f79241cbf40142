"""Reads, always scoped to the user by apps.permissions.policy: operators and auditors see every
cluster; a tenant's users the clusters (and their nodes) where the tenant has a pool, read-only."""

from __future__ import annotations

from django.db.models import Count, Q, QuerySet

from apps.core.scoping import scope_queryset

from .choices import NodeStatus
from .models import Cluster, Node


def cluster_list(*, user) -> QuerySet[Cluster]:
    return scope_queryset(
        Cluster.objects.annotate(
            node_count=Count("nodes", distinct=True),
            nodes_online=Count("nodes", filter=Q(nodes__status=NodeStatus.ONLINE), distinct=True),
        ).order_by("name"),  # Meta.ordering is ignored in GROUP BY queries
        user,
    )


def cluster_get(*, user, pk) -> Cluster | None:
    try:
        return cluster_list(user=user).filter(pk=int(pk)).first()
    except (TypeError, ValueError):
        return None


def cluster_visible(*, user, pk) -> bool:
    """For websocket subscriptions to `cluster-<pk>`: its fragments are rendered for operators and
    auditors (tenant pages join `tenant-<id>` instead)."""
    from apps.permissions.policy import as_actor

    try:
        return as_actor(user).sees_everything and Cluster.objects.filter(pk=int(pk)).exists()
    except (TypeError, ValueError):
        return False


def node_list(*, user) -> QuerySet[Node]:
    # The token is read (decrypted) only by what calls Proxmox, never per listed row.
    return scope_queryset(Node.objects.select_related("cluster").defer("cluster__token_secret"), user)


def node_visible(*, user, pk) -> bool:
    """For websocket subscriptions to `node-<pk>` (the node's charts): whoever sees the node."""
    try:
        return node_list(user=user).filter(pk=int(pk)).exists()
    except (TypeError, ValueError):
        return False


def cluster_card_nodes(*, cluster: Cluster) -> list[Node]:
    """Nodes shown on a cluster's dashboard card (the pusher has already checked who may see them)."""
    return list(Node.objects.filter(cluster=cluster).order_by("name"))


def dashboard_clusters(*, user) -> list[Cluster]:
    """Clusters with their nodes for the dashboard, in two queries."""
    clusters = list(cluster_list(user=user))
    by_cluster: dict[int, list[Node]] = {c.pk: [] for c in clusters}
    for node in Node.objects.filter(cluster_id__in=by_cluster).order_by("name"):
        by_cluster[node.cluster_id].append(node)
    for cluster in clusters:
        cluster.card_nodes = by_cluster[cluster.pk]
    return clusters
