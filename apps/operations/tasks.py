"""Celery tasks: thin, each loads the operation and calls a service."""

from celery import shared_task

from . import services
from .clients import client_for


@shared_task(name="operations.task_follow")
def task_follow(operation_id: str, upid: str) -> None:
    """Follow an existing Proxmox task to its end (kind `task.follow`)."""

    def body(operation, reporter):
        client = client_for(operation.cluster_id)
        try:
            services.follow_upid(operation, client, None, upid, reporter=reporter)
        finally:
            client.close()
        # What the task touched is not known here: one fresh sync cycle of its cluster shows it
        # (guests, nodes, storage, HA) when the operation ends, not at the next interval.
        from apps.nodes.sync import refresh_now

        refresh_now(operation.cluster_id, fresh=True)

    services.run_operation(operation_id, body)


@shared_task(name="operations.operation_reattach")
def operation_reattach(operation_id: str, resume_token: str | None = None) -> None:
    services.operation_reattach(operation_id, resume_token=resume_token)


@shared_task(name="operations.operation_reconcile")
def operation_reconcile() -> dict:
    return services.operation_reconcile()
