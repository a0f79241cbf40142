"""Worker side of an ended lease: stop the guest (if it runs), and for the delete step then destroy
it (purged from backup jobs and HA) with the guests app's delete."""

from __future__ import annotations

from apps.guests.actions.clone.worker import run_delete
from apps.guests.actions.common import refresh_after
from apps.guests.models import Guest
from apps.guests.services import explained, follow
from apps.operations.clients import client_for
from apps.proxmox import guests as pve_guests

from .models import Lease

_RUNNING = ("running", "paused", "prelaunch")


def run_lease_expire(operation, reporter, *, guest_id: int, step: str) -> dict:
    guest = Guest.objects.select_related("node", "cluster").filter(pk=guest_id).first()
    if guest is None:
        reporter.event("The guest is gone already; nothing to do.")
        return {"gone": True}
    mark = "stop_operation_id" if step == "stop" else "delete_operation_id"
    if not Lease.objects.filter(guest=guest, **{mark: operation.pk}).exists():
        reporter.event("The lease was extended or removed meanwhile; nothing to do.")
        return {"skipped": True}
    client = client_for(guest.cluster_id)
    try:
        if pve_guests.state(pve_guests.current(client, guest.ref)) in _RUNNING:
            reporter.event(f"Stopping {guest.kind} {guest}: its lease ended.", progress=5)
            with explained(guest, "stop"):
                upid = pve_guests.power(client, guest.ref, "stop")
            follow(operation, client, guest, "stop", upid, reporter,
                   progress_range=(5, 100 if step == "stop" else 40))
        else:
            reporter.event(f"{guest.kind} {guest} is not running.", progress=40)
        if step == "stop":
            refresh_after(guest, client, reporter)
            return {"stopped": guest.vmid}
    finally:
        client.close()
    reporter.event(f"Deleting {guest.kind} {guest}: its lease ended and the grace period is over.")
    return run_delete(operation, reporter, guest_id=guest.pk, purge=True, unreferenced=True)
