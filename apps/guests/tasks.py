"""Celery tasks for guests: thin, each loads rows and calls a service."""

from celery import shared_task

from apps.operations.services import run_operation
from apps.proxmox import ProxmoxError

from . import services
from .actions import backups, migrate  # noqa: F401  (registers their Celery tasks)
from .actions import clone, config, snapshots  # noqa: F401  (registers their Celery tasks)
from .actions.create import guest_create, guest_create_cleanup  # noqa: F401  (registers the tasks)
from .models import Guest


@shared_task(name="guests.guest_refresh", ignore_result=True)
def guest_refresh(guest_id: int) -> None:
    guest = Guest.objects.select_related("node").filter(pk=guest_id).first()
    if guest is not None and guest.node_id is not None:
        try:
            services.guest_refresh(guest=guest)
        except ProxmoxError:
            pass  # saved on the row (details_error) and shown on the page


@shared_task(name="guests.guest_power")
def guest_power(operation_id: str, **kwargs) -> None:
    run_operation(operation_id, lambda op, reporter: services.run_power(op, reporter, **kwargs))
