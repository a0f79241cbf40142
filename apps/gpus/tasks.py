"""Celery tasks for the GPU inventory: thin, each loads rows and calls a service."""

from celery import shared_task

from . import services


@shared_task(name="gpus.gpu_inventory_refresh", ignore_result=True)
def gpu_inventory_refresh(cluster_id: int) -> dict | None:
    """One refresh of one cluster's GPUs, mdev types and mappings (bounded Proxmox calls)."""
    from apps.nodes.models import Cluster

    cluster = Cluster.objects.filter(pk=cluster_id).first()
    if cluster is None:  # deleted since it was queued
        return None
    result = services.gpu_inventory_refresh(cluster=cluster)
    return {"skipped": result.skipped, "calls": result.calls, "changed": result.changed, "errors": result.errors}


@shared_task(name="gpus.gpu_inventory_refresh_all", ignore_result=True)
def gpu_inventory_refresh_all() -> int:
    """Beat, low frequency (GPU_INVENTORY_INTERVAL): one refresh per cluster."""
    return services.gpu_inventory_refresh_all()


@shared_task(name="gpus.gpu_attach", ignore_result=True)
def gpu_attach(operation_id: str, guest_id: int, profile_id: int, allocation_id: int | None = None,
               resume_token: str | None = None) -> None:
    # With resume_token (from the reconciler, after a worker died) it resumes from the step markers.
    from .attach import gpu_attach_task

    gpu_attach_task(operation_id, guest_id, profile_id, allocation_id, resume_token=resume_token)


@shared_task(name="gpus.gpu_detach", ignore_result=True)
def gpu_detach(operation_id: str, allocation_id: int, resume_token: str | None = None) -> None:
    from .attach import gpu_detach_task

    gpu_detach_task(operation_id, allocation_id, resume_token=resume_token)
