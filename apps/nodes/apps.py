from django.apps import AppConfig


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
        core_metrics.register_lines(metrics.prometheus_lines)
        # Operations (below us) get clients for a cluster id through this factory.
        from apps.operations.clients import set_client_factory

        from .models import Cluster

        set_client_factory(lambda cluster_id: Cluster.objects.get(pk=cluster_id).client())
