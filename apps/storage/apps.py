from django.apps import AppConfig


class StorageConfig(AppConfig):
    name = "apps.storage"
    label = "storage"
    verbose_name = "Storage"

    def ready(self):
        from apps.core import live
        from apps.nodes import sync

        from . import services
        from .selectors import storage_list

        # Storage rows come from the sync cycle's /cluster/resources; no call of our own.
        sync.register_handler("storage", services.storage_sync)
        # `storage-<pk>`: the storage page listens for content changes.
        live.register_group("storage", lambda user, key: key.isdigit() and
                            storage_list(user=user).filter(pk=int(key)).exists())
