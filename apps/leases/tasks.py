"""Celery: the lease sweep (beat) and the stop / delete of a guest whose lease ended."""

from celery import shared_task

from apps.operations.services import run_operation

from . import services, worker


@shared_task(name="leases.lease_sweep", ignore_result=True)
def lease_sweep() -> dict:
    return services.lease_sweep()


@shared_task(name="leases.lease_expire")
def lease_expire(operation_id: str, **kwargs) -> None:
    run_operation(operation_id, lambda op, reporter: worker.run_lease_expire(op, reporter, **kwargs))
