"""What the snapshot Celery tasks run (`guests.snapshot_*`, `guests.snapshots_refresh`)."""

from __future__ import annotations

from celery import shared_task
from django.db import transaction
from django.utils import timezone

from apps.operations.clients import client_for
from apps.operations.services import OperationReporter, run_operation
from apps.proxmox import ProxmoxError
from apps.proxmox import guests as pve_guests

from ... import services
from ...models import Guest
from ..common import explained, follow, push_snapshot_tree, refresh_after


_VERBS = {"create": "take a snapshot of", "rollback": "roll back", "delete": "delete a snapshot of"}


def run_snapshot(operation, reporter: OperationReporter, *, guest_id: int, action: str, name: str,
                 params: dict) -> dict:
    """Worker side: start the Proxmox task, follow it, re-read the guest and push its tree."""
    guest = Guest.objects.select_related("node", "cluster").get(pk=guest_id)
    client = client_for(guest.cluster_id)
    verb = _VERBS[action]
    try:
        with explained(guest, verb):
            if action == "create":
                upid = pve_guests.snapshot_create(client, guest.ref, name, **params)
            elif action == "rollback":
                upid = pve_guests.snapshot_rollback(client, guest.ref, name)
            else:
                upid = pve_guests.snapshot_delete(client, guest.ref, name)
        follow(operation, client, guest, verb, upid, reporter, progress_range=(0, 90))
        reporter.event("Re-reading the guest's snapshots from Proxmox", progress=95)
        refresh_after(guest, client, reporter)
        return {"snapshot": name}
    except Exception:
        # A failed task can still have changed the guest (lock, partial snapshot): show what is true now.
        refresh_after(guest, client, reporter)
        raise
    finally:
        client.close()


def _task(operation_id: str, **kwargs) -> None:
    run_operation(operation_id, lambda op, reporter: run_snapshot(op, reporter, **kwargs))


snapshot_create_task = shared_task(name="guests.snapshot_create")(_task)
snapshot_rollback_task = shared_task(name="guests.snapshot_rollback")(_task)
snapshot_delete_task = shared_task(name="guests.snapshot_delete")(_task)


@shared_task(name="guests.snapshots_refresh", ignore_result=True)
def snapshots_refresh_task(guest_id: int) -> None:
    """Targeted read of one guest for its open snapshot page, then the tree is pushed."""
    guest = Guest.objects.select_related("node", "cluster").filter(pk=guest_id).first()
    if guest is None or guest.node_id is None:
        return
    client = client_for(guest.cluster_id)
    try:
        services.guest_refresh(guest=guest, client=client)
    except ProxmoxError:
        pass  # saved on the row (details_error); the tree shows what we had
    finally:
        client.close()
    push_snapshot_tree(guest.pk)


def snapshots_refresh_if_stale(guest: Guest) -> bool:
    """Queue snapshots_refresh when the last read is older than services.DETAILS_INTERVAL."""
    from apps.nodes import presence

    age = (timezone.now() - guest.details_synced_at).total_seconds() if guest.details_synced_at else None
    if (age is not None and age < services.DETAILS_INTERVAL) or guest.node_id is None or \
            not presence.mark_queued("guest-snapshots", guest.pk, 10):
        return False
    transaction.on_commit(lambda: snapshots_refresh_task.delay(guest.pk))
    return True
