from django.apps import AppConfig
from django.db.models import Q


def tenant_clusters(actor):
    """Ids of the clusters where the actor's tenant has a pool (a subquery)."""
    from apps.permissions.models import TenantPool

    return TenantPool.objects.filter(tenant_id=actor.tenant_id).values("cluster_id")


class NodesConfig(AppConfig):
    name = "apps.nodes"
    label = "nodes"
    verbose_name = "Clusters and nodes"

    def ready(self):
        from apps.core import live
        from apps.core import metrics as core_metrics

        from . import metrics, presence, selectors, sync

        sync.register_handler("nodes", sync.sync_nodes)
        live.register_group("cluster", lambda user, key: selectors.cluster_visible(user=user, pk=key))
        live.register_group("node", lambda user, key: selectors.node_visible(user=user, pk=key))
        # Open pages count as watchers: the sync runs at the active interval while anyone looks.
        live.register_presence("cluster", presence.watch)
        live.register_presence("node", presence.watch)
        # A tenant's page watches the clusters where the tenant has a pool (their sync pushes).
        live.register_presence("tenant", presence.watch_tenants)
        from apps.permissions import policy

        from .models import Cluster, Node

        # Tenants see the clusters where they have a pool and those clusters' nodes (read-only).
        policy.register_scope(Cluster, lambda actor: Q(pk__in=tenant_clusters(actor)))
        policy.register_scope(Node, lambda actor: Q(cluster_id__in=tenant_clusters(actor)))
        core_metrics.register_lines(metrics.prometheus_lines)
        # Operations (below us) get clients for a cluster id through this factory.
        from apps.operations.clients import set_client_factory

        set_client_factory(lambda cluster_id: Cluster.objects.get(pk=cluster_id).client())
