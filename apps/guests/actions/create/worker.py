"""What the Celery tasks `guests.guest_create` and `guests.guest_create_cleanup` run: create or
clone on Proxmox, configure, resize, start, re-sync; a run that failed on Proxmox removes what it
made.

Each step is recorded on the operation (step markers) and is idempotent (it compares the guest
with what was asked), so a run whose worker died is resumed by the reconciler from its step. A
failure of our own bookkeeping (database, Redis) after Proxmox did the work never removes the
guest: the error names the steps not applied and the guest is kept."""

from __future__ import annotations

import contextlib
import logging
import re
import time

from celery import shared_task
from django.db import DatabaseError, IntegrityError, transaction
from django.dispatch import receiver
from django.utils import timezone

from apps.operations.choices import OperationStatus
from apps.operations.clients import client_for
from apps.operations.models import Operation
from apps.operations.services import (
    OperationCancelled,
    OperationReporter,
    follow_upid,
    heartbeat_timeout,
    operation_step,
    operation_step_done,
    register_resumable,
    run_operation,
    steps_left,
)
from apps.operations.signals import operation_finished
from apps.permissions.policy import pool_tenant
from apps.proxmox import GuestRef, ProxmoxError, ProxmoxUnreachable, follow_task, parse_upid, task_ok
from apps.proxmox import cluster as pve_cluster
from apps.proxmox import explain as proxmox_explain
from apps.proxmox import guests as pve_guests

from ... import config as guest_config
from ... import services as guest_services
from ...models import Guest, VmidReservation
from . import extensions
from .validation import GiB, MiB


logger = logging.getLogger(__name__)
PROGRESS = {"create": (0, 70), "config": 75, "resize": (75, 85), "start": (85, 95), "sync": 98}


class CreateError(ProxmoxError):
    """A creation step failed; the message says which, in words, then Proxmox's exact text."""


def _fail(step: str, plan: dict, vmid: int, exc: ProxmoxError) -> CreateError:
    kind = "VM" if plan["type"] == "qemu" else "CT"
    head = f"Could not create {kind} {vmid} ({plan['name']}): {step} failed"
    return CreateError(proxmox_explain.explain(head, exc, scope="create", node=plan["node"], said=str(exc)),
                       status=exc.status)


def _find(client, vmid: int) -> dict | None:
    """The guest with `vmid` as /cluster/resources lists it, or None."""
    return pve_cluster.find_guest(client, vmid)


def _ref(plan: dict, vmid: int) -> GuestRef:
    return GuestRef(plan["node"], plan["type"], vmid)


def _ours(operation: Operation, plan: dict, found: dict) -> bool:
    """A guest found under our vmid is ours if we started its create/clone task (UPID recorded) or,
    when we died before recording it, if type and name are the ones we asked for."""
    kinds = ("qmcreate", "vzcreate", "qmclone")
    if any(parse_upid(u).type in kinds for u in operation.upids or []):
        return True
    return found.get("type") == plan["type"] and (found.get("name") or "") == plan["name"]


def _wait(client, upid: str, reporter: OperationReporter) -> None:
    """Follow a clean-up task to its end (also once the operation is cancelled, unlike follow_upid)."""
    status = follow_task(client, parse_upid(upid).node, upid,
                         lambda n, text: reporter.event(text, level="debug"), poll=0.2)
    if not task_ok(status.get("exitstatus")):
        raise CreateError(f"clean-up task failed: {status.get('exitstatus')}")


def _remove(client, plan: dict, vmid: int, reporter: OperationReporter) -> None:
    """Delete the guest we created (stop it first, purge it from jobs/HA/pools, unreferenced disks too).
    Waits for a create/clone task that still holds the guest's lock (a cancelled one stops soon)."""
    reporter.event(f"Removing {vmid} from Proxmox so that nothing is left behind", level="warning")
    deadline = time.monotonic() + 120
    while True:
        found = _find(client, vmid)
        if found is None:
            reporter.event(f"Nothing of {vmid} is left on Proxmox", level="warning")
            return
        if not found.get("lock") or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    ref = GuestRef(found["node"], found["type"], vmid)
    if found.get("status") == "running":
        _wait(client, pve_guests.power(client, ref, "stop"), reporter)
    _wait(client, pve_guests.destroy(client, ref, purge=True, unreferenced_disks=True), reporter)
    reporter.event(f"Removed {vmid} from Proxmox", level="warning")


def _boot_disk(config: dict) -> tuple[str, int] | None:
    """(key, size in bytes) of the first real disk (scsi0, virtio0, sata0, ide0...) of a VM config."""
    for disk in guest_config.disks(config, "qemu"):
        if disk["media"] != "disk" or "cloudinit" in disk["volume"] or not disk["key"][-1].isdigit():
            continue
        if disk["key"].startswith(("efidisk", "tpmstate")):
            continue
        match = re.fullmatch(r"(\d+(?:\.\d+)?)([KMGT]?)", disk["size"] or "")
        size = int(float(match.group(1)) * {"": 1, "K": 1024, "M": MiB, "G": GiB, "T": 1024 * GiB}[match.group(2)]) \
            if match else 0
        return disk["key"], size
    return None


def _apply_config(reporter, client, plan: dict, vmid: int) -> None:
    """Hardware and cloud-init settings in one config PUT, only the keys that differ from the
    guest's config (so a resumed run re-applies nothing already there)."""
    current, _ = pve_guests.config(client, _ref(plan, vmid))
    settings = {key: value for key, value in plan["config"].items() if str(current.get(key, "")) != str(value)}
    if plan.get("cloudinit") and not any("cloudinit" in str(v) for v in current.values()):
        boot = _boot_disk(current)
        storage = plan.get("storage") or (str(current.get(boot[0], "")).split(":", 1)[0] if boot else "")
        slot = next((k for k in ("ide0", "ide1", "ide3", "sata5") if k not in current), None)
        if storage and slot:
            settings[slot] = f"{storage}:cloudinit"
    if settings:
        try:
            pve_guests.update_config(client, _ref(plan, vmid), **settings)
        except ProxmoxError as exc:
            raise _fail("applying the hardware and cloud-init settings", plan, vmid, exc) from exc
    reporter.event("Applied hardware and cloud-init settings" if settings else
                   "Hardware and cloud-init settings already applied", progress=PROGRESS["config"])


def _grow_disk(operation, reporter, client, plan: dict, vmid: int) -> None:
    """Grow the boot disk to the asked size, unless it already has it (or a resize task of an
    earlier run is still going: that one is followed instead)."""
    try:
        if operation.current_upid and parse_upid(operation.current_upid).type == "resize":
            follow_upid(operation, client, None, operation.current_upid, reporter=reporter,
                        progress_range=PROGRESS["resize"])
        boot = _boot_disk(pve_guests.config(client, _ref(plan, vmid))[0])
        if boot and plan["disk_size"] * GiB > boot[1]:
            upid = pve_guests.resize(client, _ref(plan, vmid), boot[0], f"{plan['disk_size']}G")
            if upid:
                follow_upid(operation, client, plan["node"], upid, reporter=reporter, progress_range=PROGRESS["resize"])
            reporter.event(f"Disk {boot[0]} grown to {plan['disk_size']} GiB", progress=PROGRESS["resize"][1])
    except ProxmoxError as exc:
        raise _fail("growing the disk", plan, vmid, exc) from exc


def sync_guest(client, cluster_id: int, vmid: int) -> Guest | None:
    """Targeted re-sync: read /cluster/resources once, upsert this guest's row (as the sync would),
    push it to the open pages and read its details, so it shows at once, not at the next cycle."""
    from apps.nodes.models import Node

    item = _find(client, vmid)
    if item is None:
        return None
    node_ids = dict(Node.objects.filter(cluster_id=cluster_id).values_list("name", "id"))
    want = guest_services._desired_guest(item, node_ids, timezone.now())
    want["tenant_id"] = pool_tenant(cluster_id, want["pool"])  # in a tenant's pool: the tenant's, as at sync
    try:
        with transaction.atomic():
            guest, _ = Guest.objects.update_or_create(cluster_id=cluster_id, vmid=vmid, defaults=want)
    except IntegrityError:  # the periodic sync inserted it between our read and write
        Guest.objects.filter(cluster_id=cluster_id, vmid=vmid).update(**want)
        guest = Guest.objects.get(cluster_id=cluster_id, vmid=vmid)
    guest_services.push_guests(cluster_id, [guest])
    try:
        guest = Guest.objects.select_related("node", "cluster").get(pk=guest.pk)
        guest_services.guest_refresh(guest=guest, client=client)
    except ProxmoxError as exc:  # details are a bonus; the page re-reads them
        logger.info("details of new guest %s: %s", vmid, exc)
    return guest


def _release(operation: Operation) -> None:
    VmidReservation.objects.filter(operation_id=operation.pk).delete()
    Operation.objects.filter(pk=operation.pk).update(secret=None)  # the CT password is no longer needed


def _finish_target(operation: Operation, guest: Guest) -> None:
    # From now on the guest page lists this operation among its own.
    Operation.objects.filter(pk=operation.pk).update(target_type="guests.guest", target_id=str(guest.pk),
                                                     target_repr=str(guest)[:200])


def _retrying(fn, reporter: OperationReporter, what: str, attempts: int = 6):
    """Our own bookkeeping after Proxmox did its part: retried, never a reason to undo the guest."""
    for attempt in range(attempts):
        try:
            return fn()
        except DatabaseError as exc:
            if attempt == attempts - 1:
                raise
            logger.warning("%s failed (%s); retrying", what, exc)
            time.sleep(min(2 ** attempt, 10))


def _steps(plan: dict) -> list[str]:
    """The steps of this creation, in order (what the operation's step markers name)."""
    first = ["clone", "config", "resize"] if plan["source"] == "template" else ["create"]
    added = [name for name, _ in extensions.create_steps(plan)]  # e.g. a container's GPU device nodes
    return first + added + (["start"] if plan["start"] else []) + ["sync"]


_STEP_WORDS = {"clone": "clone", "create": "create", "config": "hardware and cloud-init settings",
               "resize": "disk resize", "start": "start", "sync": "inventory update"}
_CREATE_TYPES = ("qmcreate", "vzcreate", "qmclone")


def _really_failed(exc: ProxmoxError) -> bool:
    """Proxmox answered and refused or failed the step; not merely unreachable (state unknown)."""
    return not isinstance(exc, ProxmoxUnreachable) and not isinstance(exc.__cause__, ProxmoxUnreachable)


def _not_applied(operation: Operation, plan: dict) -> str:
    operation.refresh_from_db(fields=["steps_done"])
    words = {**_STEP_WORDS, **dict(extensions.create_steps(plan))}
    left = [words.get(step, step) for step in steps_left(operation, _steps(plan))]
    return f"steps not applied: {', '.join(left)}" if left else "every step was applied"


def _check_not_taken(operation, plan: dict, vmid: int, kind: str, found: dict | None) -> None:
    if found is not None and not _ours(operation, plan, found):
        raise CreateError(f"Could not create {kind} {vmid} ({plan['name']}): VMID {vmid} was taken on Proxmox "
                          f"outside the portal by '{found.get('name', '')}'; that guest was left alone")


def _create_step(operation, reporter, client, plan: dict, vmid: int, kind: str, found: dict | None) -> None:
    """Create or clone, unless a guest of ours is already there (a retried or resumed run): then
    follow its create task if it is the one we recorded, and create nothing."""
    if found is not None:
        reporter.event(f"{kind} {vmid} already exists on Proxmox (this run is a retry): not creating it again")
        if operation.current_upid and parse_upid(operation.current_upid).type in _CREATE_TYPES:
            try:
                follow_upid(operation, client, None, operation.current_upid, reporter=reporter,
                            progress_range=PROGRESS["create"])
            except (CreateError, OperationCancelled):
                raise
            except ProxmoxError as exc:
                raise _fail("cloning the template" if plan["source"] == "template" else "creating it",
                            plan, vmid, exc) from exc
        return
    upid = _start(client, plan, vmid, operation)
    try:
        follow_upid(operation, client, None, upid, reporter=reporter, progress_range=PROGRESS["create"])
    except (CreateError, OperationCancelled):
        raise
    except ProxmoxError as exc:
        raise _fail("cloning the template" if plan["source"] == "template" else "creating it",
                    plan, vmid, exc) from exc


def run_create(operation: Operation, reporter: OperationReporter, *, plan: dict, vmid: int) -> dict:
    """Worker side of guest_create_vm/ct (see the module docstring for the guarantees)."""
    if not VmidReservation.objects.filter(operation_id=operation.pk, vmid=vmid).exists():
        raise CreateError(f"the reservation of VMID {vmid} is gone (the operation was cleaned up); nothing was done")
    kind = "VM" if plan["type"] == "qemu" else "CT"
    client = client_for(plan["cluster_id"])
    first = "clone" if plan["source"] == "template" else "create"
    # True once this operation may have made something on Proxmox (only that is ever removed).
    made = bool(operation.steps_done)
    guest = None
    try:
        if not operation_step(operation, first):
            found = _find(client, vmid)
            _check_not_taken(operation, plan, vmid, kind, found)  # someone else's guest: never touched
            made = True
            _create_step(operation, reporter, client, plan, vmid, kind, found)
            reporter.event(f"{kind} {vmid} created on {plan['node']}", progress=PROGRESS["create"][1])
            operation_step_done(operation, first)
        made = True
        if plan["source"] == "template":
            if not operation_step(operation, "config"):
                _apply_config(reporter, client, plan, vmid)
                operation_step_done(operation, "config")
            if not operation_step(operation, "resize"):
                _grow_disk(operation, reporter, client, plan, vmid)
                operation_step_done(operation, "resize")
        for step, _ in extensions.create_steps(plan):  # idempotent, like every step
            if not operation_step(operation, step):
                extensions.run_create_step(step, operation=operation, reporter=reporter, client=client, plan=plan,
                                           vmid=vmid)
                operation_step_done(operation, step)
        if plan["start"] and not operation_step(operation, "start"):
            _power_on(operation, reporter, client, plan, vmid)
            operation_step_done(operation, "start")
        operation_step(operation, "sync")
        try:
            guest = sync_guest(client, plan["cluster_id"], vmid)
            reporter.event(f"{kind} {vmid} is in the inventory", progress=PROGRESS["sync"])
        except Exception as exc:  # the guest is fine; never undo a good create over a read
            logger.warning("targeted sync of %s failed", vmid, exc_info=True)
            reporter.event(f"{kind} {vmid} will show at the next sync (reading it failed: {exc})", level="warning")

        def bookkeeping():
            with transaction.atomic():
                if guest is not None:
                    _finish_target(operation, guest)
                _release(operation)

        _retrying(bookkeeping, reporter, f"bookkeeping of new {kind} {vmid}")
        operation_step_done(operation, "sync")
        return {"vmid": vmid, "node": plan["node"], "guest": guest.pk if guest else None}
    except (OperationCancelled, ProxmoxError) as exc:
        if made and not (isinstance(exc, ProxmoxError) and not _really_failed(exc)):
            try:
                _remove(client, plan, vmid, reporter)
            except Exception as cleanup_exc:  # keep the reservation: the janitor retries the clean-up
                logger.exception("clean-up of %s failed", vmid)
                reporter.event(f"Clean-up of {vmid} failed ({cleanup_exc}); it will be retried", level="error")
                raise
            _release(operation)
            raise
        _release(operation)
        if not made:
            raise
        # Unreachable mid-way: what Proxmox did is unknown, so nothing is removed.
        raise CreateError(f"{exc}. {kind} {vmid} was left as it is on Proxmox; {_not_applied(operation, plan)}",
                          status=exc.status) from exc
    except Exception as exc:  # our own bookkeeping (database, Redis) or our bug: never destroy for it
        logger.exception("create of %s: bookkeeping failed", vmid)
        with contextlib.suppress(Exception):
            _release(operation)
        if not made:
            raise
        raise CreateError(f"Could not finish creating {kind} {vmid} ({plan['name']}): {exc.__class__.__name__}: {exc}. "
                          f"The {kind} was kept on Proxmox; {_not_applied(operation, plan)}") from exc
    finally:
        client.close()


def _start(client, plan: dict, vmid: int, operation: Operation) -> str:
    try:
        if plan["source"] == "template":
            template = GuestRef(plan["template_node"], "qemu", int(plan["template_vmid"]))
            return pve_guests.clone(client, template, vmid, **plan["clone"])
        params = dict(plan["create"], vmid=vmid)
        if plan["type"] == "lxc" and plan.get("has_password"):
            operation.refresh_from_db(fields=["secret"])
            if not operation.secret:
                raise CreateError(f"the root password for CT {vmid} is gone (the operation ended); nothing was done")
            params["password"] = operation.secret
        return pve_guests.create(client, plan["node"], plan["type"], **params)
    except CreateError:
        raise
    except ProxmoxError as exc:
        raise _fail("cloning the template" if plan["source"] == "template" else "creating it", plan, vmid, exc) from exc


def _power_on(operation, reporter, client, plan: dict, vmid: int) -> None:
    """Start the guest unless it already runs (a start task of an earlier run is followed)."""
    try:
        if operation.current_upid and parse_upid(operation.current_upid).type in ("qmstart", "vzstart"):
            follow_upid(operation, client, None, operation.current_upid, reporter=reporter,
                        progress_range=PROGRESS["start"])
        if pve_guests.current(client, _ref(plan, vmid)).get("status") != "running":
            upid = pve_guests.power(client, _ref(plan, vmid), "start")
            follow_upid(operation, client, plan["node"], upid, reporter=reporter, progress_range=PROGRESS["start"])
    except ProxmoxError as exc:
        raise _fail("starting it", plan, vmid, exc) from exc
    reporter.event("Started", progress=PROGRESS["start"][1])


@shared_task(name="guests.guest_create")
def guest_create(operation_id: str, plan: dict, vmid: int, resume_token: str | None = None) -> None:
    # With resume_token (from the reconciler, after a worker died) it resumes from the step markers.
    run_operation(operation_id, lambda op, reporter: run_create(op, reporter, plan=plan, vmid=vmid),
                  resume_token=resume_token)


register_resumable("guests.guest_create")


@shared_task(name="guests.guest_create_cleanup")
def guest_create_cleanup(operation_id: str, attempt: int = 0) -> str:
    """Janitor for creates that ended without their worker (reconciler, cancel of a lost worker):
    succeeded -> sync the guest in; otherwise remove what we created. Then release the vmid."""
    operation = Operation.objects.filter(pk=operation_id).first()
    if operation is None or not VmidReservation.objects.filter(operation_id=operation_id).exists():
        return "nothing to do"
    beat = operation.heartbeat_at
    if beat and (timezone.now() - beat).total_seconds() < heartbeat_timeout() and attempt < 10:
        guest_create_cleanup.apply_async((operation_id, attempt + 1), countdown=heartbeat_timeout())
        return "a worker is still on it"
    plan, vmid = operation.task_kwargs["plan"], operation.task_kwargs["vmid"]
    reporter = OperationReporter(operation)
    client = client_for(plan["cluster_id"])
    try:
        found = _find(client, vmid)
        if operation.status == OperationStatus.SUCCEEDED:
            guest = sync_guest(client, plan["cluster_id"], vmid)
            if guest is not None:
                _finish_target(operation, guest)
        elif found is not None and _ours(operation, plan, found):
            _remove(client, plan, vmid, reporter)
        _release(operation)
        return "cleaned"
    finally:
        client.close()


@receiver(operation_finished, dispatch_uid="guests.create.finished")
def _on_finished(sender, operation: Operation, **kwargs) -> None:
    # Ended while its reservation is still held = ended without our worker's bookkeeping.
    if operation.kind == "guest.create" and VmidReservation.objects.filter(operation_id=operation.pk).exists():
        transaction.on_commit(lambda: guest_create_cleanup.apply_async(
            (str(operation.pk),), countdown=heartbeat_timeout()))
