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
