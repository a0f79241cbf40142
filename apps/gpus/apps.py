from django.apps import AppConfig


class GpusConfig(AppConfig):
    name = "apps.gpus"
    label = "gpus"
    verbose_name = "GPUs"

    def ready(self):
        from apps.nodes import sync

        from . import services

        # No Proxmox call in the handler: it only queues a refresh when the inventory is due.
        sync.register_handler("gpus", services.gpu_sync_handler)
