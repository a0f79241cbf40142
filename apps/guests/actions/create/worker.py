"""What the Celery tasks `guests.guest_create` and `guests.guest_create_cleanup` run: create or
clone on Proxmox, configure, resize, start, re-sync; a failed run removes what it made."""

from __future__ import annotations

import logging
import re
import time

from celery import shared_task
from django.core.cache import cache
from django.db import IntegrityError, transaction
from django.dispatch import receiver
from django.utils import timezone

from apps.core.fields import decrypt
from apps.operations.choices import OperationStatus
from apps.operations.clients import client_for
from apps.operations.models import Operation
from apps.operations.services import OperationReporter, follow_upid, heartbeat_timeout, run_operation
from apps.operations.signals import operation_finished
from apps.proxmox import ProxmoxError, ProxmoxUnreachable, follow_task, parse_upid, task_ok

from ... import config as guest_config
from ... import services as guest_services
from ...models import Guest, VmidReservation
from .services import secret_cache_key
from .validation import GiB, MiB


logger = logging.getLogger(__name__)
PROGRESS = {"create": (0, 70), "config": 75, "resize": (75, 85), "start": (85, 95), "sync": 98}


class CreateError(ProxmoxError):
    """A creation step failed; the message says which, in words, then Proxmox's exact text."""


_REASONS = [
    (re.compile(r"not enough free space|No space left|storage full", re.I), "the storage is full"),
    (re.compile(r"no quorum"), "the cluster has no quorum"),
    (re.compile(r"already exists"), "the VMID is already used on Proxmox"),
    (re.compile(r"is locked \((?P<lock>[\w-]+)\)"), "the guest is locked"),
    (re.compile(r"does not exist"), "something it needs does not exist on Proxmox"),
    (re.compile(r"Parameter verification failed|value does not look like|invalid", re.I), "Proxmox rejected a value"),
]


def _fail(step: str, plan: dict, vmid: int, exc: ProxmoxError) -> CreateError:
    kind = "VM" if plan["type"] == "qemu" else "CT"
    if isinstance(exc, ProxmoxUnreachable):
        reason = f"node {plan['node']} or the cluster is unreachable"
    else:
        reason = next((say for pattern, say in _REASONS if pattern.search(str(exc))), "")
    head = f"Could not create {kind} {vmid} ({plan['name']}): {step} failed"
    return CreateError(f"{head}: {reason}. Proxmox said: {exc}" if reason else f"{head}. Proxmox said: {exc}",
                       status=exc.status)


def _find(client, vmid: int) -> dict | None:
    """The guest with `vmid` as /cluster/resources lists it (one call), or None."""
    for item in client.get("cluster/resources", type="vm") or []:
        if str(item.get("vmid")) == str(vmid):
            return item
    return None


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
    base = f"nodes/{found['node']}/{found['type']}/{vmid}"
    if found.get("status") == "running":
        _wait(client, client.post(f"{base}/status/stop"), reporter)
    _wait(client, client.delete(base, purge=1, **{"destroy-unreferenced-disks": 1}), reporter)
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


def _after_clone(operation, reporter, client, plan: dict, vmid: int) -> None:
    """Hardware and cloud-init settings (one config PUT), then grow the disk to the asked size."""
    base = f"nodes/{plan['node']}/qemu/{vmid}"
    settings = dict(plan["config"])
    current = client.get(f"{base}/config") or {}
    if plan.get("cloudinit") and not any("cloudinit" in str(v) for v in current.values()):
        boot = _boot_disk(current)
        storage = plan.get("storage") or (str(current.get(boot[0], "")).split(":", 1)[0] if boot else "")
        slot = next((k for k in ("ide0", "ide1", "ide3", "sata5") if k not in current), None)
        if storage and slot:
            settings[slot] = f"{storage}:cloudinit"
    try:
        client.put(f"{base}/config", **settings)
    except ProxmoxError as exc:
        raise _fail("applying the hardware and cloud-init settings", plan, vmid, exc) from exc
    reporter.event("Applied hardware and cloud-init settings", progress=PROGRESS["config"])
    boot = _boot_disk(client.get(f"{base}/config") or {})
    if boot and plan["disk_size"] * GiB > boot[1]:
        try:
            upid = client.put(f"{base}/resize", disk=boot[0], size=f"{plan['disk_size']}G")
            if upid:
                follow_upid(operation, client, plan["node"], upid, reporter=reporter, progress_range=PROGRESS["resize"])
        except ProxmoxError as exc:
            raise _fail(f"growing disk {boot[0]}", plan, vmid, exc) from exc
        reporter.event(f"Disk {boot[0]} grown to {plan['disk_size']} GiB", progress=PROGRESS["resize"][1])


def sync_guest(client, cluster_id: int, vmid: int) -> Guest | None:
    """Targeted re-sync: read /cluster/resources once, upsert this guest's row (as the sync would),
    push it to the open pages and read its details, so it shows at once, not at the next cycle."""
    from apps.nodes.models import Node

    item = _find(client, vmid)
    if item is None:
        return None
    node_ids = dict(Node.objects.filter(cluster_id=cluster_id).values_list("name", "id"))
    want = guest_services._desired_guest(item, node_ids, timezone.now())
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
    cache.delete(secret_cache_key(operation.pk))


def _finish_target(operation: Operation, guest: Guest) -> None:
    # From now on the guest page lists this operation among its own.
    Operation.objects.filter(pk=operation.pk).update(target_type="guests.guest", target_id=str(guest.pk),
                                                     target_repr=str(guest)[:200])


def run_create(operation: Operation, reporter: OperationReporter, *, plan: dict, vmid: int) -> dict:
    """Worker side of guest_create_vm/ct (see the module docstring for the guarantees)."""
    if not VmidReservation.objects.filter(operation_id=operation.pk, vmid=vmid).exists():
        raise CreateError(f"the reservation of VMID {vmid} is gone (the operation was cleaned up); nothing was done")
    kind = "VM" if plan["type"] == "qemu" else "CT"
    client = client_for(plan["cluster_id"])
    created = False
    try:
        found = _find(client, vmid)
        if found is not None:
            if not _ours(operation, plan, found):
                raise CreateError(f"Could not create {kind} {vmid} ({plan['name']}): VMID {vmid} was taken on Proxmox "
                                  f"outside the portal by '{found.get('name', '')}'; that guest was left alone")
            created = True
            reporter.event(f"{kind} {vmid} already exists on Proxmox (this run is a retry): not creating it again")
            if operation.current_upid and parse_upid(operation.current_upid).type in ("qmcreate", "vzcreate", "qmclone"):
                follow_upid(operation, client, None, operation.current_upid, reporter=reporter,
                            progress_range=PROGRESS["create"])
        else:
            created = True  # from here a failure may have left something: clean-up checks Proxmox
            upid = _start(client, plan, vmid, operation)
            try:
                follow_upid(operation, client, None, upid, reporter=reporter, progress_range=PROGRESS["create"])
            except CreateError:
                raise
            except ProxmoxError as exc:
                raise _fail("cloning the template" if plan["source"] == "template" else "creating it",
                            plan, vmid, exc) from exc
        reporter.event(f"{kind} {vmid} created on {plan['node']}", progress=PROGRESS["create"][1])
        if plan["source"] == "template":
            _after_clone(operation, reporter, client, plan, vmid)
        if plan["start"]:
            _power_on(operation, reporter, client, plan, vmid)
        try:
            guest = sync_guest(client, plan["cluster_id"], vmid)
            reporter.event(f"{kind} {vmid} is in the inventory", progress=PROGRESS["sync"])
        except Exception as exc:  # the guest is fine; never undo a good create over a read
            logger.warning("targeted sync of %s failed", vmid, exc_info=True)
            reporter.event(f"{kind} {vmid} will show at the next sync (reading it failed: {exc})", level="warning")
            guest = None
        with transaction.atomic():
            if guest is not None:
                _finish_target(operation, guest)
            _release(operation)
        return {"vmid": vmid, "node": plan["node"], "guest": guest.pk if guest else None}
    except BaseException:
        if created:
            try:
                _remove(client, plan, vmid, reporter)
            except Exception as cleanup_exc:  # keep the reservation: the janitor retries the clean-up
                logger.exception("clean-up of %s failed", vmid)
                reporter.event(f"Clean-up of {vmid} failed ({cleanup_exc}); it will be retried", level="error")
                raise
        _release(operation)
        raise
    finally:
        client.close()


def _start(client, plan: dict, vmid: int, operation: Operation) -> str:
    try:
        if plan["source"] == "template":
            return client.post(f"nodes/{plan['template_node']}/qemu/{plan['template_vmid']}/clone",
                               newid=vmid, **plan["clone"])
        params = dict(plan["create"], vmid=vmid)
        if plan["type"] == "lxc":
            token = cache.get(secret_cache_key(operation.pk))
            if plan.get("has_password"):
                if not token:
                    raise CreateError(f"the root password for CT {vmid} expired before a worker took the job; "
                                      "submit the form again")
                params["password"] = decrypt(token)
        return client.post(f"nodes/{plan['node']}/{plan['type']}", **params)
    except CreateError:
        raise
    except ProxmoxError as exc:
        raise _fail("cloning the template" if plan["source"] == "template" else "creating it", plan, vmid, exc) from exc


def _power_on(operation, reporter, client, plan: dict, vmid: int) -> None:
    try:
        upid = client.post(f"nodes/{plan['node']}/{plan['type']}/{vmid}/status/start")
        follow_upid(operation, client, plan["node"], upid, reporter=reporter, progress_range=PROGRESS["start"])
    except ProxmoxError as exc:
        raise _fail("starting it", plan, vmid, exc) from exc
    reporter.event("Started", progress=PROGRESS["start"][1])


def _stale(operation: Operation | None) -> bool:
    """Running, but no heartbeat for the reconciler's timeout: the worker that ran it is gone."""
    if operation is None or operation.status != OperationStatus.RUNNING:
        return False
    beat = operation.heartbeat_at
    return beat is None or (timezone.now() - beat).total_seconds() > heartbeat_timeout()


@shared_task(name="guests.guest_create")
def guest_create(operation_id: str, plan: dict, vmid: int) -> None:
    # A redelivered task whose first worker died resumes (run_create then finds its own guest).
    operation = Operation.objects.filter(pk=operation_id).first()
    run_operation(operation_id, lambda op, reporter: run_create(op, reporter, plan=plan, vmid=vmid),
                  reattach=_stale(operation))


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
