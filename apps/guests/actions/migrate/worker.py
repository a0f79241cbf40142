"""What the Celery task `guests.guest_migrate` runs: precheck again, qmigrate/vzmigrate followed with a
percentage from its log (MigrationProgress), failures explained in words, the row moved at the end."""

from __future__ import annotations

import logging
import time

from celery import shared_task
from django.utils import timezone

from apps.operations.choices import OperationStatus
from apps.operations.clients import client_for
from apps.operations.models import Operation
from apps.operations.services import (
    OperationCancelled,
    OperationReporter,
    follow_upid,
    poll_interval,
    register_node_return,
    run_operation,
)
from apps.proxmox import ProxmoxError, ProxmoxTaskError, ProxmoxUnreachable, parse_upid, tasklog
from apps.proxmox import cluster as pve_cluster
from apps.proxmox import explain as proxmox_explain
from apps.proxmox import guests as pve_guests
from apps.proxmox.tasklog import MigrationProgress

from ... import services
from ...choices import GuestType
from ...models import Guest
from .plans import _plan

logger = logging.getLogger(__name__)


HA_WAIT = 600  # seconds to wait for the HA manager to carry out a requested migration


# -- errors in the user's words ----------------------------------------------------------------

def explain_migrate_error(guest: Guest, target: str, exc: ProxmoxError, *, detail: str = "") -> str:
    """`Could not migrate VM 101 (web-02) to pve3: <reason>. Proxmox said: <message>`; `detail` is
    the most telling ERROR line of the task log when the task failed (the gateway's one table)."""
    head = f"Could not migrate {guest.kind} {guest} to {target}"
    said = detail or exc.message or str(exc)
    return proxmox_explain.explain(head, detail or exc, scope="migrate", target=target,
                                   node=guest.node.name if guest.node_id else "", said=said)


def _task_error_detail(operation: Operation) -> str:
    """The reason in the task log: `migration aborted (...): <why>` or the first specific ERROR line."""
    return tasklog.migration_error(
        list(operation.events.filter(level="error").order_by("seq").values_list("message", flat=True)))


def _follow_ha(operation, client, guest: Guest, target: str, reporter, parser, since: int) -> None:
    """An HA-managed guest: Proxmox only queued a request; follow the migration task the HA
    manager starts for it, or wait until the guest shows up on the target."""
    reporter.event("The HA manager accepted the request; waiting for it to migrate the guest")
    deadline = time.monotonic() + HA_WAIT
    task_type = "qmigrate" if guest.type == GuestType.QEMU else "vzmigrate"
    while time.monotonic() < deadline:
        if reporter.heartbeat() == OperationStatus.CANCELLED:
            raise OperationCancelled()
        for task in pve_cluster.tasks(client):
            if task["type"] == task_type and task["id"] == str(guest.vmid) and task["starttime"] >= since:
                follow_upid(operation, client, None, task["upid"], progress_parser=parser, reporter=reporter)
                return
        here = pve_cluster.find_guest(client, guest.vmid)
        if here and here.get("node") == target:
            return
        time.sleep(poll_interval())
    raise services.GuestActionError(f"Could not migrate {guest.kind} {guest} to {target}: the HA manager did "
                                    f"not carry it out within {HA_WAIT} s")


def _moved(guest: Guest, target: str, client) -> None:
    """Point the row at its new node, then re-read its state there (saved and pushed live)."""
    from apps.nodes.models import Node

    node = Node.objects.get(cluster_id=guest.cluster_id, name=target)
    Guest.objects.filter(pk=guest.pk).update(node=node, updated=timezone.now())
    guest.node = node
    services._status_update(guest, client)
    try:  # the open guest page reloads its details (node, tasks) when told they are fresh
        services.guest_refresh(guest=guest, client=client)
    except ProxmoxError as exc:
        logger.info("details of %s after migration not read: %s", guest, exc)


def run_migrate(operation: Operation, reporter: OperationReporter, *, guest_id: int, target: str) -> dict:
    """Worker side of guest_migrate: precheck again, start qmigrate/vzmigrate, follow it with a
    percentage, then move the guest row. On failure the guest row is re-read on its source."""
    guest = Guest.objects.select_related("node", "cluster").get(pk=guest_id)
    source = guest.node.name
    client = client_for(guest.cluster_id)
    try:
        try:
            plan = _plan(guest, client)
        except ProxmoxError as exc:
            raise services.GuestActionError(explain_migrate_error(guest, target, exc), status=exc.status) from exc
        choice = plan.target(target)
        if choice is None or not choice.allowed:
            why = "; ".join(choice.reasons) if choice else f"{target} is not a node of this cluster"
            raise services.GuestActionError(f"Could not migrate {guest.kind} {guest} to {target}: {why}")
        reporter.event(f"{plan.mode_text} From {source} to {target}.", progress=0)
        since = int(time.time()) - 5
        try:
            # QEMU: live when running (with its local disks); LXC: restart mode when running.
            upid = pve_guests.migrate(client, guest.ref, target, online=plan.running,
                                      with_local_disks=bool(plan.local_disks), restart=plan.running)
        except ProxmoxError as exc:
            raise services.GuestActionError(explain_migrate_error(guest, target, exc), status=exc.status) from exc
        state_bytes = guest.maxmem if guest.type == GuestType.QEMU and plan.running else 0
        parser = MigrationProgress(plan.disk_bytes, state_bytes)
        try:
            follow_upid(operation, client, source, upid, progress_parser=parser, reporter=reporter)
            if parse_upid(upid).type == "hamigrate":
                _follow_ha(operation, client, guest, target, reporter, parser, since)
        except ProxmoxUnreachable as exc:
            raise _node_lost(operation, guest, source, target, upid, exc) from exc
        except ProxmoxTaskError as exc:
            detail = _task_error_detail(operation)
            message = explain_migrate_error(guest, target, exc, detail=detail)
            services._status_update(guest, client)  # still where it was: show its real state there
            head, sep, said = message.partition(". Proxmox said: ")
            task = f" (task: {exc.message})" if detail else ""
            raise services.GuestActionError(f"{head}; it is still on {source}{sep}{said}{task}",
                                            status=exc.status) from exc
        _moved(guest, target, client)
        reporter.event(f"{guest.kind} {guest} now runs on {target}" if plan.running else
                       f"{guest.kind} {guest} is now on {target}")
        return {"source": source, "target": target, "mode": plan.mode}
    finally:
        client.close()


def _last_task_line(operation: Operation) -> str:
    """The newest line of Proxmox's task log saved on the operation (events below debug level)."""
    line = operation.events.exclude(level="debug").order_by("-seq").values_list("message", flat=True).first()
    return line or ""


def _node_lost(operation: Operation, guest: Guest, source: str, target: str, upid: str,
               exc: ProxmoxError) -> services.GuestActionError:
    """The node running the migration stopped answering: say what is known, and mark the operation
    so the reconciler settles the guest's state once the node is back (_reconcile_after_return)."""
    last = _last_task_line(operation)
    said = f" Proxmox's task said last: \"{last}\"." if last else " Proxmox's task had logged nothing yet."
    result = dict(operation.result or {}, await_node={"node": source, "upid": upid, "guest_id": guest.pk,
                                                      "target": target})
    Operation.objects.filter(pk=operation.pk).update(result=result)
    operation.result = result
    return services.GuestActionError(
        f"Lost contact with node {source} while migrating {guest.kind} {guest} to {target} ({exc.message or exc})."
        f"{said} Where the guest is now is unknown until {source} answers again; its state will be reconciled "
        "then and noted here.", status=exc.status)


def _reconcile_after_return(operation: Operation) -> bool:
    """Reconciler hook: once the lost node answers, read the migration task's end and where the guest
    is, update the guest row and note it in the operation's history. Raises ProxmoxError (retried
    next run) while the node is still away."""
    from apps.nodes.models import Node

    info = operation.result["await_node"]
    client = client_for(operation.cluster_id)
    try:
        status = client.task_status(info["node"], info["upid"])
        if status.get("status") != "stopped":
            return False
        guest = Guest.objects.select_related("node", "cluster").filter(pk=info["guest_id"]).first()
        found = None
        if guest is not None:
            found = pve_cluster.find_guest(client, guest.vmid)
        reporter = OperationReporter(operation)
        ended = status.get("exitstatus") or "unknown"
        if guest is None or found is None:
            reporter.event(f"Node {info['node']} is back. Proxmox's migration task ended with \"{ended}\"; the guest "
                           "no longer exists on the cluster.", level="warning")
            return True
        node = Node.objects.filter(cluster_id=guest.cluster_id, name=found.get("node")).first()
        if node is not None and node.pk != guest.node_id:
            Guest.objects.filter(pk=guest.pk).update(node=node, updated=timezone.now())
            guest.node = node
        services._status_update(guest, client)
        reporter.event(f"Reconciled after node {info['node']} came back: Proxmox's migration task ended with "
                       f"\"{ended}\"; {guest.kind} {guest} is on {found.get('node')} ({found.get('status', 'unknown')}).",
                       level="warning")
        return True
    finally:
        client.close()


register_node_return("guest.migrate", _reconcile_after_return)


@shared_task(name="guests.guest_migrate")
def guest_migrate_task(operation_id: str, **kwargs) -> None:
    run_operation(operation_id, lambda op, reporter: run_migrate(op, reporter, **kwargs))
