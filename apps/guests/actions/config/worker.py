"""What the `guests.guest_config` Celery task runs: disk resizes as Proxmox tasks, then the re-read."""

from __future__ import annotations

from celery import shared_task

from apps.operations.clients import client_for
from apps.operations.services import OperationReporter, run_operation
from apps.proxmox import guests as pve_guests

from ...models import Guest
from ..common import explained, follow, refresh_after


def run_config(operation, reporter: OperationReporter, *, guest_id: int, resizes: list, digest: str | None = None,
               saved: bool = False) -> dict:
    """Worker side: each disk resize as a Proxmox task (grow only), then the targeted re-read."""
    guest = Guest.objects.select_related("node", "cluster").get(pk=guest_id)
    client = client_for(guest.cluster_id)
    try:
        start, span = (10, 80) if saved else (0, 90)
        for i, (disk, size) in enumerate(resizes):
            low, high = start + span * i / len(resizes), start + span * (i + 1) / len(resizes)
            reporter.event(f"Growing disk {disk} to {size}", progress=low)
            with explained(guest, f"grow disk {disk} of"):
                upid = pve_guests.resize(client, guest.ref, disk, size, digest=digest if i == 0 else None)
            follow(operation, client, guest, f"grow disk {disk} of", upid, reporter, progress_range=(low, high))
        reporter.event("Re-reading the configuration from Proxmox", progress=95)
        refresh_after(guest, client, reporter)
        return {"resized": [d for d, _ in resizes]}
    except Exception:
        refresh_after(guest, client, reporter)  # the PUT step may have changed it: show what is true now
        raise
    finally:
        client.close()


@shared_task(name="guests.guest_config")
def guest_config_task(operation_id: str, **kwargs) -> None:
    run_operation(operation_id, lambda op, reporter: run_config(op, reporter, **kwargs))
