"""Celery tasks for storage: thin, each loads rows and calls a service."""

from celery import shared_task

from apps.operations.services import run_operation

from . import services
from .models import Storage


@shared_task(name="storage.storage_content_refresh", ignore_result=True)
def storage_content_refresh(storage_id: int) -> None:
    storage = Storage.objects.select_related("node").filter(pk=storage_id).first()
    if storage is not None:  # deleted since it was queued: nothing to do
        try:
            services.storage_content_refresh(storage=storage)
        except services.ProxmoxError:
            pass  # saved on the row (content_error); the next refresh retries


@shared_task(name="storage.storage_content_refresh_all", ignore_result=True)
def storage_content_refresh_all() -> int:
    """Beat, low frequency (STORAGE_CONTENT_REFRESH_INTERVAL): one content call per storage."""
    return services.storage_content_refresh_all()


@shared_task(name="storage.storage_upload")
def storage_upload(operation_id: str, **kwargs) -> None:
    run_operation(operation_id, lambda op, reporter: services.run_upload(op, reporter, **kwargs))


@shared_task(name="storage.storage_download_url")
def storage_download_url(operation_id: str, **kwargs) -> None:
    run_operation(operation_id, lambda op, reporter: services.run_download_url(op, reporter, **kwargs))
