from django.apps import AppConfig
from django.db.models import Q


class StorageConfig(AppConfig):
    name = "apps.storage"
    label = "storage"
    verbose_name = "Storage"

    def ready(self):
        from apps.core import live
        from apps.nodes import sync

        from apps.nodes.apps import tenant_clusters
        from apps.permissions import policy

        from . import services
        from .models import Storage
        from .selectors import storage_list

        # Storage rows come from the sync cycle's /cluster/resources; no call of our own.
        sync.register_handler("storage", services.storage_sync)
        # `storage-<pk>`: the storage page listens for content changes (a trigger naming nothing:
        # each page re-reads the content through its user's selector).
        live.register_group("storage", lambda user, key: key.isdigit() and
                            storage_list(user=user).filter(pk=int(key)).exists())
        # Storages a tenant may use: every storage (shared or node-local) of the clusters where it
        # has a pool; placement needs the local ones too. What of their content it sees: guests app.
        policy.register_scope(Storage, lambda actor: Q(cluster_id__in=tenant_clusters(actor)))
        # Files a tenant's users upload or download use its disk quota.
        from . import transfer_quota

        transfer_quota.register()
