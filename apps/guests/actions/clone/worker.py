"""What the Celery tasks `guests.guest_clone`, `guests.guest_template`, `guests.guest_delete` run."""

from __future__ import annotations

from celery import shared_task

from apps.operations.clients import client_for
from apps.operations.services import OperationReporter, run_operation
from apps.proxmox import ProxmoxError
from apps.proxmox import guests as pve_guests

from ... import services
from ...choices import GuestType
from ...models import Guest, VmidReservation
from ..common import explained, follow, refresh_after


def run_clone(operation, reporter: OperationReporter, *, guest_id: int, newid: int, params: dict) -> dict:
    """Worker side: POST clone (once: a retry re-follows the recorded task), follow it with its
    percent, then re-sync the new guest; the reservation goes either way."""
    from ..create import sync_guest

    guest = Guest.objects.select_related("node", "cluster").get(pk=guest_id)
    client = client_for(guest.cluster_id)
    try:
        if operation.current_upid and f":{'qmclone' if guest.type == GuestType.QEMU else 'vzclone'}:" \
                in operation.current_upid:
            upid = operation.current_upid
            reporter.event("Retry: following the clone task started before")
        else:
            with explained(guest, "clone"):
                upid = pve_guests.clone(client, guest.ref, newid, **params)
        follow(operation, client, guest, "clone", upid, reporter, progress_range=(0, 90))
        reporter.event(f"Reading the new {guest.kind} {newid} from Proxmox", progress=95)
        new = sync_guest(client, guest.cluster_id, newid)
        refresh_after(guest, client, reporter)
        return {"vmid": newid, "guest": new.pk if new else None}
    finally:
        VmidReservation.objects.filter(operation_id=operation.pk).delete()
        client.close()


@shared_task(name="guests.guest_clone")
def guest_clone_task(operation_id: str, **kwargs) -> None:
    run_operation(operation_id, lambda op, reporter: run_clone(op, reporter, **kwargs))


def run_template(operation, reporter: OperationReporter, *, guest_id: int) -> dict:
    guest = Guest.objects.select_related("node", "cluster").get(pk=guest_id)
    client = client_for(guest.cluster_id)
    try:
        with explained(guest, "convert to a template"):
            upid = pve_guests.template(client, guest.ref)
        # qemu: a task; lxc: done synchronously (no UPID, nothing to follow)
        follow(operation, client, guest, "convert to a template", upid, reporter, progress_range=(0, 90))
        Guest.objects.filter(pk=guest.pk).update(template=True)
        guest.template = True
        refresh_after(guest, client, reporter)
        return {"template": True}
    finally:
        client.close()


@shared_task(name="guests.guest_template")
def guest_template_task(operation_id: str, **kwargs) -> None:
    run_operation(operation_id, lambda op, reporter: run_template(op, reporter, **kwargs))


def run_delete(operation, reporter: OperationReporter, *, guest_id: int, purge: bool, unreferenced: bool) -> dict:
    guest = Guest.objects.select_related("node", "cluster").get(pk=guest_id)
    client = client_for(guest.cluster_id)
    try:
        with explained(guest, "delete"):
            upid = pve_guests.destroy(client, guest.ref, purge=purge, unreferenced_disks=unreferenced)
        follow(operation, client, guest, "delete", upid, reporter, progress_range=(0, 95))
    except ProxmoxError:
        refresh_after(guest, client, reporter)  # show its true state (lock, protection) on the page
        raise
    finally:
        client.close()
    vmid, cluster_id = guest.vmid, guest.cluster_id
    Guest.objects.filter(pk=guest.pk).delete()
    services.push_guests(cluster_id, [], gone=[guest])
    return {"deleted": vmid, "purged": purge}


@shared_task(name="guests.guest_delete")
def guest_delete_task(operation_id: str, **kwargs) -> None:
    run_operation(operation_id, lambda op, reporter: run_delete(op, reporter, **kwargs))
