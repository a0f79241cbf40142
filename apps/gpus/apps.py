from django.apps import AppConfig


class GpusConfig(AppConfig):
    name = "apps.gpus"
    label = "gpus"
    verbose_name = "GPUs"

    def ready(self):
        from apps.core import live
        from apps.nodes import presence, selectors, sync

        from . import services

        # No Proxmox call in the handler: it only queues a refresh when the inventory is due.
        sync.register_handler("gpus", services.gpu_sync_handler)
        # `gpus-<cluster id>`: the GPU page of a cluster's GPUs. Its own group rather than
        # `cluster-<id>`, so an asynchronous refresh never interleaves with the sync's pushes.
        live.register_group("gpus", lambda user, key: selectors.cluster_visible(user=user, pk=key))
        live.register_presence("gpus", presence.watch)  # push only when someone looks
