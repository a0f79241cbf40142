from django.apps import AppConfig


class GpusConfig(AppConfig):
    name = "apps.gpus"
    label = "gpus"
    verbose_name = "GPUs"

    def ready(self):
        from apps.core import live
        from apps.core.scoping import can
        from apps.nodes import presence, selectors, sync

        from . import services

        # No Proxmox call in the handler: it only queues a refresh when the inventory is due.
        sync.register_handler("gpus", services.gpu_sync_handler)
        # `gpus-<cluster id>`: the GPU page of a cluster's GPUs. Its own group rather than
        # `cluster-<id>`, so an asynchronous refresh never interleaves with the sync's pushes.
        # Operators and auditors only: the pushed map names every holder, of every tenant.
        live.register_group("gpus", lambda user, key: can(user, "infrastructure.view")
                            and selectors.cluster_visible(user=user, pk=key))
        live.register_presence("gpus", presence.watch)  # push only when someone looks
        register_allocations()
        from apps.operations.services import register_resumable

        # A worker that dies mid-attach/detach: the reconciler hands the operation to a new worker,
        # which resumes from its step markers (attach.run_attach / run_detach are idempotent).
        register_resumable("gpus.gpu_attach")
        register_resumable("gpus.gpu_detach")


def register_allocations() -> None:
    """Tenants see the profiles offered to them and their own allocations; quotas "gpu:<id>"
    count allocations; a create request may name a `gpu_profile`; migration targets need a free card."""
    from django.db.models import Q

    from apps.guests.actions.create import extensions
    from apps.guests.actions.migrate import extensions as migrate_extensions
    from apps.permissions import policy, quotas

    from . import attach
    from .models import GpuAllocation, GpuProfile

    policy.register_scope(GpuProfile, lambda actor: Q(tenants=actor.tenant_id) if actor.tenant_id else Q(pk__in=[]))
    policy.register_scope(GpuAllocation, lambda actor: policy.tenant_q(actor))
    quotas.register_usage("gpu:", attach.gpu_usage)
    extensions.register(attach.CreateExtension())
    migrate_extensions.register(attach.MigrateExtension())  # targets need a free card of the profile
