from django.apps import AppConfig
from django.db.models import Q


class GuestsConfig(AppConfig):
    name = "apps.guests"
    label = "guests"
    verbose_name = "Guests"

    def ready(self):
        from apps.core import live
        from apps.nodes import sync

        from . import services
        from .selectors import guest_list

        # Guests come from the sync cycle's /cluster/resources; no call per guest.
        sync.register_handler("guests", services.guest_sync)
        from . import quotas  # tenant quota usage and settling (connects operation_finished)

        quotas.register()
        sync.register_handler("guests.quotas", quotas.reconcile)
        # Creates and clones above a tenant's approval size wait for an operator (apps.approvals).
        from .actions.clone import services as clone_services
        from .actions.create.services import register_approvals

        register_approvals()
        clone_services.register_approvals()
        register_scopes()
        # `guest-<pk>`: the guest page listens for fresh details.
        live.register_group("guest", lambda user, key: key.isdigit() and
                            guest_list(user=user).filter(pk=int(key)).exists())
        # ...and counts as a watcher: its usage history comes with the cluster's one export call.
        from apps.nodes import presence

        live.register_presence("guest", presence.watch)


def register_scopes() -> None:
    """What a tenant's users see of guests and of what hangs off them (apps.permissions.policy)."""
    from django.db.models import Exists, OuterRef

    from apps.nodes.apps import tenant_clusters
    from apps.permissions import policy
    from apps.storage.models import StorageContent

    from .models import Guest, Snapshot

    policy.register_scope(Guest, lambda actor: policy.tenant_q(actor))
    policy.register_scope(Snapshot, lambda actor: policy.tenant_q(actor, "guest__tenant"))

    def storage_content(actor) -> Q:
        # Volumes of the tenant's guests (backups, disks) and the shared media (ISOs, templates)
        # of the storages it may use; never another tenant's backups.
        if actor.tenant_id is None:
            return Q(pk__in=[])
        own = Guest.objects.filter(cluster_id=OuterRef("storage__cluster_id"), vmid=OuterRef("vmid"),
                                   tenant_id=actor.tenant_id)
        return Q(storage__cluster_id__in=tenant_clusters(actor)) & (
            Q(content__in=["iso", "vztmpl"], vmid__isnull=True) | Q(Exists(own)))

    policy.register_scope(StorageContent, storage_content)
    # BackupJob and VmidReservation have no rule: cluster-wide, the operators' (tenants see none).
