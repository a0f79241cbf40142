"""What the Celery task `guests.guest_migrate` runs: precheck again, qmigrate/vzmigrate followed with a
percentage from its log (MigrationProgress), failures explained in words, the row moved at the end."""

from __future__ import annotations

import logging
import re
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
    run_operation,
)
from apps.proxmox import ProxmoxError, ProxmoxTaskError, parse_upid

from ... import services
from ...choices import GuestType
from ...models import Guest
from .plans import _plan

logger = logging.getLogger(__name__)


HA_WAIT = 600  # seconds to wait for the HA manager to carry out a requested migration


_SIZE = r"(\d+(?:\.\d+)?)\s*([KMGT]i?B|B|[KMGT])?"
_STATE_LINE = re.compile(rf"migration active, transferred {_SIZE} of {_SIZE} VM-state")
_DISK_LINE = re.compile(rf"transferred {_SIZE} of {_SIZE}")
_ZFS_TOTAL = re.compile(rf"total estimated size is {_SIZE}")
_ZFS_SENT = re.compile(rf"\d\d:\d\d:\d\d\s+{_SIZE}\s+\S+@__migration__\s*$")


def _bytes(number: str, unit: str | None) -> float:
    unit = (unit or "").upper().replace("IB", "").rstrip("B")
    return float(number) * 1024 ** " KMGT".index(unit or " ")


class MigrationProgress:
    """Percent of the whole migration from its log lines: the disk copy fills the first part (its
    share is the disks' part of disks + memory), the VM state the rest. Never moves back."""

    def __init__(self, disk_bytes: int, state_bytes: int):
        total = disk_bytes + state_bytes
        self.disk_share = disk_bytes / total if total else (0.0 if state_bytes else 1.0)
        self.disk_bytes = disk_bytes
        self.finished = 0.0  # bytes of the volumes already copied
        self.volume = (0.0, 0.0)  # done, size of the volume being copied
        self.percent = 0.0

    def _volume(self, done: float, size: float) -> float:
        old_done, old_size = self.volume
        if old_size and (size != old_size or done < old_done):  # the next volume started
            self.finished += old_size
        self.volume = (done, size)
        whole = max(self.disk_bytes, self.finished + size) or 1
        return 100.0 * self.disk_share * min(1.0, (self.finished + done) / whole)

    def __call__(self, line: str) -> float | None:
        if match := _STATE_LINE.search(line):
            done, size = _bytes(*match.group(1, 2)), _bytes(*match.group(3, 4))
            percent = 100.0 * (self.disk_share + (1 - self.disk_share) * min(1.0, done / size if size else 0))
        elif match := _DISK_LINE.search(line):
            percent = self._volume(_bytes(*match.group(1, 2)), _bytes(*match.group(3, 4)))
        elif match := _ZFS_TOTAL.search(line):
            percent = self._volume(0.0, _bytes(*match.group(1, 2)))
        elif (match := _ZFS_SENT.search(line)) and self.volume[1]:
            percent = self._volume(_bytes(*match.group(1, 2)), self.volume[1])
        else:
            return None
        self.percent = max(self.percent, min(100.0, percent))
        return self.percent


# -- errors in the user's words ----------------------------------------------------------------

_EXPLAIN = [
    (re.compile(r"No route to host|Can't connect to destination|Connection (refused|timed out)|"
                r"Host key verification failed", re.I),
     lambda m, t: f"the target node {t} is offline or became unreachable"),
    (re.compile(r"missing mapped devices? (?P<dev>[\w, ]+)"),
     lambda m, t: f"{t} has no mapping for its mapped device {m['dev'].strip()}"),
    (re.compile(r"can't live migrate running VM which uses following mapped devices: (?P<dev>.+)"),
     lambda m, t: f"it is running with mapped device {m['dev']}, which cannot move live; shut it down first"),
    (re.compile(r"uses local devices: (?P<dev>.+)"),
     lambda m, t: f"it uses devices that exist only on its node ({m['dev']})"),
    (re.compile(r"storage '(?P<s>[^']+)' is not available on node '(?P<n>[^']+)'"),
     lambda m, t: f"storage {m['s']} is not available on {m['n']}"),
    (re.compile(r"out of space|No space left", re.I), lambda m, t: "the target storage is full"),
    (re.compile(r"target is local node"), lambda m, t: f"it is already on {t}"),
    (re.compile(r"lxc live migration is currently not implemented"),
     lambda m, t: "containers cannot migrate live; restart mode is needed"),
    (re.compile(r"local cdrom image"), lambda m, t: "a local CD-ROM image is inserted; eject it first"),
]


def explain_migrate_error(guest: Guest, target: str, exc: ProxmoxError, *, detail: str = "") -> str:
    """`Could not migrate VM 101 (web-02) to pve3: <reason>. Proxmox said: <message>`; `detail` is
    the most telling ERROR line of the task log when the task failed."""
    text = detail or exc.message or str(exc)
    head = f"Could not migrate {guest.kind} {guest} to {target}"
    for pattern, say in _EXPLAIN:
        match = pattern.search(text)
        if match:
            reason = say(match, target)
            break
    else:
        generic = services.explain_error("migrate", guest, ProxmoxError(text) if detail else exc)
        return generic.replace(f"Could not migrate {guest.kind} {guest}", head, 1)
    return f"{head}: {reason}. Proxmox said: {text}"


_ABORTED = re.compile(r"ERROR: migration aborted \(duration [^)]*\): (?P<msg>.+)$")
_ERROR = re.compile(r"ERROR: (?P<msg>.+)$")
_SUMMARY = re.compile(r"migration (finished with problems|aborted)")


def _task_error_detail(operation: Operation) -> str:
    """The reason in the task log: `migration aborted (...): <why>` or the first specific ERROR line."""
    lines = list(operation.events.filter(level="error").order_by("seq").values_list("message", flat=True))
    for line in lines:
        if match := _ABORTED.search(line):
            return match["msg"]
    for line in lines:
        match = _ERROR.search(line)
        if match and not _SUMMARY.match(match["msg"]):
            return match["msg"].replace("online migrate failure - ", "online migrate failure: ")
    return ""


def _follow_ha(operation, client, guest: Guest, target: str, reporter, parser, since: int) -> None:
    """An HA-managed guest: Proxmox only queued a request; follow the migration task the HA
    manager starts for it, or wait until the guest shows up on the target."""
    reporter.event("The HA manager accepted the request; waiting for it to migrate the guest")
    deadline = time.monotonic() + HA_WAIT
    task_type = "qmigrate" if guest.type == GuestType.QEMU else "vzmigrate"
    while time.monotonic() < deadline:
        if reporter.heartbeat() == OperationStatus.CANCELLED:
            raise OperationCancelled()
        for task in client.get("cluster/tasks") or []:
            if task.get("type") == task_type and str(task.get("id")) == str(guest.vmid) and \
                    int(task.get("starttime") or 0) >= since:
                follow_upid(operation, client, None, task["upid"], progress_parser=parser, reporter=reporter)
                return
        here = [r for r in client.cluster_resources("vm") if int(r.get("vmid") or 0) == guest.vmid]
        if here and here[0].get("node") == target:
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
        params: dict = {"target": target}
        if guest.type == GuestType.QEMU:
            params["online"] = plan.running
            if plan.local_disks:
                params["with-local-disks"] = True
        elif plan.running:
            params["restart"] = True
        reporter.event(f"{plan.mode_text} From {source} to {target}.", progress=0)
        since = int(time.time()) - 5
        try:
            upid = client.post(f"{guest.api_path}/migrate", **params)
        except ProxmoxError as exc:
            raise services.GuestActionError(explain_migrate_error(guest, target, exc), status=exc.status) from exc
        state_bytes = guest.maxmem if guest.type == GuestType.QEMU and plan.running else 0
        parser = MigrationProgress(plan.disk_bytes, state_bytes)
        try:
            follow_upid(operation, client, source, upid, progress_parser=parser, reporter=reporter)
            if parse_upid(upid).type == "hamigrate":
                _follow_ha(operation, client, guest, target, reporter, parser, since)
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


@shared_task(name="guests.guest_migrate")
def guest_migrate_task(operation_id: str, **kwargs) -> None:
    run_operation(operation_id, lambda op, reporter: run_migrate(op, reporter, **kwargs))
