"""Migrate a guest to another node of its cluster (pve-semantics §3.5).

Targets come from Proxmox's precheck (`GET .../migrate`) plus the portal's view of which nodes
are online; every refused node gets its reason in words. Running VMs migrate live (`online=1`,
local disks mirrored with `with-local-disks=1`), running containers in restart mode. The
operation's percentage comes from the task log (disk copy / mirror lines first, then
`migration active, transferred X of Y VM-state`); when the task ends the guest row is re-read
on its new node, so the page shows the move without waiting for the next sync.
"""

from __future__ import annotations

import logging
import re
import time
from dataclasses import asdict, dataclass, field

from celery import shared_task
from django import forms
from django.contrib.auth.mixins import LoginRequiredMixin
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import Http404
from django.shortcuts import redirect, render
from django.urls import path
from django.utils import timezone
from django.utils.cache import patch_vary_headers
from django.views import View
from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import exceptions, serializers, status
from rest_framework.response import Response
from rest_framework.views import APIView

import apps.core.api  # noqa: F401  (loads DRF's settings classes before extend_schema below needs them)
from apps.core.models import AuditResult
from apps.core.scoping import is_operator
from apps.core.services import audit_log
from apps.core.views import is_partial
from apps.operations.api.serializers import OperationSerializer
from apps.operations.choices import OperationStatus
from apps.operations.clients import client_for
from apps.operations.live import progress_context
from apps.operations.models import Operation
from apps.operations.services import (
    OperationCancelled,
    OperationReporter,
    follow_upid,
    operation_create,
    poll_interval,
    run_operation,
)
from apps.proxmox import ProxmoxError, ProxmoxTaskError, ProxmoxUnreachable, parse_upid

from .. import config as guest_config
from .. import services
from ..choices import GuestType
from ..models import Guest
from ..selectors import guest_get

logger = logging.getLogger(__name__)

HA_WAIT = 600  # seconds to wait for the HA manager to carry out a requested migration


# -- targets: Proxmox's precheck in words -----------------------------------------------------


@dataclass
class MigrateTarget:
    node: str
    allowed: bool
    online: bool
    reasons: list[str] = field(default_factory=list)


@dataclass
class MigratePlan:
    """What a migration of one guest would do and where it may go."""

    guest_id: int
    source: str
    running: bool
    mode: str  # live | restart | offline
    mode_text: str
    targets: list[MigrateTarget]
    blockers: list[str]  # reasons that refuse every node
    notes: list[str]
    local_disks: list[dict]
    disk_bytes: int

    @property
    def allowed(self) -> list[MigrateTarget]:
        return [t for t in self.targets if t.allowed]

    def target(self, node: str) -> MigrateTarget | None:
        return next((t for t in self.targets if t.node == node), None)

    def as_dict(self) -> dict:
        return asdict(self)


def _size_text(size) -> str:
    size = float(size or 0)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if size < 1024 or unit == "TiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return ""


def _node_reasons(reasons: dict, mapped_info: dict) -> list[str]:
    out = []
    for key, value in (reasons or {}).items():
        items = value if isinstance(value, list) else [value]
        if key == "unavailable_storages":
            out.append(f"storage {', '.join(map(str, items))} is not available there")
        elif key == "unavailable-resources":
            named = [f"{d} ({mapped_info[d]['name']})" if isinstance(mapped_info.get(d), dict) and
                     mapped_info[d].get("name") else str(d) for d in items]
            out.append(f"mapped device {', '.join(named)} has no mapping there")
        elif key in ("blocking-ha-resources", "blocking-resources"):
            sids = [i.get("sid", str(i)) if isinstance(i, dict) else str(i) for i in items]
            out.append(f"HA rules keep it apart from {', '.join(sids)}")
        else:
            out.append(f"{key}: {', '.join(map(str, items))}")
    return out


def _config_disk_bytes(guest: Guest) -> int:
    """Sizes of a container's volumes from its cached config (the LXC precheck has no local_disks)."""
    total = 0
    for disk in guest_config.disks(guest.config or {}, guest.type):
        match = re.fullmatch(r"(\d+(?:\.\d+)?)([KMGT]?)", disk["size"] or "")
        if match:
            total += int(float(match.group(1)) * 1024 ** " KMGT".index(match.group(2) or " "))
    return total


def migrate_plan(*, guest: Guest, user, client=None) -> MigratePlan:
    """Ask Proxmox's precheck where `guest` may migrate and explain every refused node.

    One Proxmox call. Raises PermissionDenied, ValidationError (node unknown) or ProxmoxError
    (e.g. `VM is locked (backup)`, no quorum, node unreachable) with Proxmox's message."""
    if not is_operator(user):
        raise PermissionDenied("only operators may migrate guests until tenancy exists")
    if guest.node_id is None:
        raise ValidationError({"node": [f"the node of {guest} is not known yet; wait for the next sync"]})
    return _plan(guest, client)


def _plan(guest: Guest, client=None) -> MigratePlan:
    from apps.nodes.models import Node

    own = client is None
    client = client or client_for(guest.cluster_id)
    try:
        check = client.get(f"{guest.api_path}/migrate") or {}
    finally:
        if own:
            client.close()
    allowed = set(check.get("allowed_nodes", check.get("allowed-nodes")) or [])
    refused = check.get("not_allowed_nodes", check.get("not-allowed-nodes")) or {}
    mapped_info = check.get("mapped-resource-info") or {}
    running = bool(int(check.get("running") or 0))
    source = guest.node.name

    blockers, notes = [], []
    local_resources = check.get("local_resources") or []
    if local_resources:
        mapped = set(check.get("mapped-resources") or [])
        if running and set(local_resources) <= mapped:
            blockers.append(f"it is running with mapped device {', '.join(local_resources)}, which cannot move "
                            "while running; shut it down to migrate it offline")
        else:
            blockers.append(f"it uses devices that exist only on {source} ({', '.join(local_resources)})")
    local_disks = check.get("local_disks") or []
    for disk in local_disks:
        if int(disk.get("cdrom") or 0):
            blockers.append(f"the local CD-ROM image {disk['volid']} is inserted; eject it first")
    copied = [d for d in local_disks if not int(d.get("cdrom") or 0)]
    disk_bytes = sum(int(d.get("size") or 0) for d in copied)
    if copied:
        notes.append("Local disks are copied to the target: " + ", ".join(
            f"{d['volid']} ({_size_text(d.get('size'))})" for d in copied))
    if guest.type == GuestType.LXC:
        disk_bytes = _config_disk_bytes(guest)

    if guest.type == GuestType.QEMU:
        mode, text = ("live", "Live migration: the VM keeps running while its memory is copied.") if running else \
            ("offline", "Offline migration: the VM is stopped, only its configuration and local disks move.")
    else:
        mode, text = ("restart", "Restart mode: the container is shut down, moved, and started again on the "
                                 "target (a short outage).") if running else \
            ("offline", "Offline migration: the container is stopped, only its configuration and volumes move.")

    online = {n.name: n.online and n.status == "online"
              for n in Node.objects.filter(cluster_id=guest.cluster_id).only("name", "online", "status")}
    names = sorted((set(online) | allowed | set(refused)) - {source})
    targets = []
    for name in names:
        reasons = _node_reasons(refused.get(name), mapped_info)
        if not online.get(name, True):
            reasons.insert(0, "the node is offline")
        if name not in allowed and not reasons:
            reasons.append("Proxmox does not offer it as a target")
        reasons += blockers
        targets.append(MigrateTarget(node=name, allowed=not reasons, online=online.get(name, True), reasons=reasons))
    return MigratePlan(guest_id=guest.pk, source=source, running=running, mode=mode, mode_text=text,
                       targets=targets, blockers=blockers, notes=notes, local_disks=local_disks,
                       disk_bytes=disk_bytes)


# -- service ----------------------------------------------------------------------------------


def guest_migrate(*, guest: Guest, user, target: str) -> Operation:
    """Queue the migration of `guest` to node `target` (kind `guest.migrate`).

    Checks what the portal knows without calling Proxmox: an operator, a known source node, a
    target that is another online node of the same cluster. The worker re-runs Proxmox's
    precheck before it starts. Raises PermissionDenied or ValidationError (field `target`);
    nothing is queued then."""
    from apps.nodes.models import Node

    if not is_operator(user):
        raise PermissionDenied("only operators may migrate guests until tenancy exists")
    if guest.node_id is None:
        raise ValidationError({"node": [f"the node of {guest} is not known yet; wait for the next sync"]})
    target = (target or "").strip()
    node = Node.objects.filter(cluster_id=guest.cluster_id, name=target).first()
    if not target:
        raise ValidationError({"target": ["choose the node to migrate to"]})
    if node is None:
        raise ValidationError({"target": [f"'{target}' is not a node of cluster {guest.cluster}"]})
    if node.pk == guest.node_id:
        raise ValidationError({"target": [f"{guest.kind} {guest} is already on {target}"]})
    if not node.online or node.status != "online":
        raise ValidationError({"target": [f"node {target} is offline"]})
    return operation_create(kind="guest.migrate", user=user, task_name="guests.guest_migrate",
                            kwargs={"guest_id": guest.pk, "target": target}, target=guest,
                            cluster_id=guest.cluster_id,
                            title=f"Migrate {guest.kind} {guest} from {guest.node.name} to {target}")


# -- progress ---------------------------------------------------------------------------------

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


# -- worker -----------------------------------------------------------------------------------


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


# -- UI ---------------------------------------------------------------------------------------


class MigrateForm(forms.Form):
    target = forms.CharField(max_length=100, error_messages={"required": "choose the node to migrate to"})


def _render(request, template: str, context: dict, status: int = 200):
    response = render(request, template, context, status=status)
    patch_vary_headers(response, ("HX-Request",))
    return response


def _field_errors(exc: ValidationError) -> str:
    return "; ".join(m for msgs in exc.message_dict.values() for m in msgs)


class GuestMigrateView(LoginRequiredMixin, View):
    """GET: the migrate dialog (targets from Proxmox's precheck); POST target=<node>: queue it and
    answer the operation's live progress panel (htmx) or redirect to the operation page."""

    def _guest(self, request, pk) -> Guest:
        guest = guest_get(user=request.user, pk=pk)
        if guest is None:
            raise Http404("No such guest.")
        return guest

    def _dialog(self, request, guest, *, error: str = "", selected: str = "", status: int = 200):
        plan, plan_error = None, ""
        try:
            plan = migrate_plan(guest=guest, user=request.user)
        except PermissionDenied as exc:
            plan_error = str(exc)
        except ValidationError as exc:
            plan_error = _field_errors(exc)
        except ProxmoxError as exc:
            plan_error = services.explain_error("migrate", guest, exc).replace("Could not migrate",
                                                                               "Cannot migrate", 1)
        template = "guests/migrate/partials/migrate_dialog.html" if is_partial(request) else \
            "guests/migrate/migrate.html"
        status = 200 if is_partial(request) else status  # htmx swaps only 2xx answers
        return _render(request, template, {"guest": guest, "object": guest, "plan": plan, "plan_error": plan_error,
                                           "error": error, "selected": selected}, status)

    def get(self, request, pk):
        return self._dialog(request, self._guest(request, pk))

    def post(self, request, pk):
        guest = self._guest(request, pk)
        form = MigrateForm(request.POST)
        target = request.POST.get("target", "")
        try:
            if not form.is_valid():
                raise ValidationError({k: list(v) for k, v in form.errors.items()})
            operation = guest_migrate(guest=guest, user=request.user, target=form.cleaned_data["target"])
        except ValidationError as exc:
            return self._dialog(request, guest, error=_field_errors(exc), selected=target, status=400)
        except PermissionDenied as exc:
            audit_log(user=request.user, action="guests.guest_migrate", target=guest, result=AuditResult.DENIED,
                      request=request)
            return self._dialog(request, guest, error=str(exc), status=403)
        audit_log(user=request.user, action="guests.guest_migrate", target=guest, result=AuditResult.ACCEPTED,
                  request=request, detail={"operation": str(operation.pk), "target": operation.task_kwargs["target"]})
        if not is_partial(request):
            return redirect(operation.get_absolute_url())
        return _render(request, "guests/migrate/partials/migrate_started.html",
                       {"guest": guest, **progress_context(operation)})


urlpatterns = [
    path("guests/<int:pk>/migrate/", GuestMigrateView.as_view(), name="guest_migrate"),
]


# -- API --------------------------------------------------------------------------------------


class MigrateRequestSerializer(serializers.Serializer):
    target = serializers.CharField(max_length=100, help_text="name of the node to migrate to")


_TargetSerializer = inline_serializer("MigrateTarget", many=True, fields={
    "node": serializers.CharField(), "allowed": serializers.BooleanField(), "online": serializers.BooleanField(),
    "reasons": serializers.ListField(child=serializers.CharField())})
_PlanSerializer = inline_serializer("MigratePlan", fields={
    "guest_id": serializers.IntegerField(), "source": serializers.CharField(), "running": serializers.BooleanField(),
    "mode": serializers.CharField(help_text="live, restart or offline"), "mode_text": serializers.CharField(),
    "targets": _TargetSerializer, "blockers": serializers.ListField(child=serializers.CharField()),
    "notes": serializers.ListField(child=serializers.CharField()), "local_disks": serializers.ListField(),
    "disk_bytes": serializers.IntegerField()})


class ProxmoxRefused(exceptions.APIException):
    status_code = status.HTTP_409_CONFLICT
    default_code = "proxmox_refused"


class ProxmoxDown(exceptions.APIException):
    status_code = status.HTTP_503_SERVICE_UNAVAILABLE
    default_code = "proxmox_unreachable"


def api_guest(request, pk) -> Guest:
    """The guest if the caller may see it, else 404 (the same selector as every guest endpoint)."""
    guest = guest_get(user=request.user, pk=pk)
    if guest is None:
        raise exceptions.NotFound("No such guest.")
    return guest


class GuestMigrateTargetsAPIView(APIView):
    """Where the guest may migrate: Proxmox's precheck, each refused node with its reasons."""

    @extend_schema(responses={200: _PlanSerializer}, summary="Migration targets from Proxmox's precheck")
    def get(self, request, pk):
        guest = api_guest(request, pk)
        try:
            plan = migrate_plan(guest=guest, user=request.user)
        except PermissionDenied as exc:
            raise exceptions.PermissionDenied(str(exc))
        except ProxmoxUnreachable as exc:
            raise ProxmoxDown(services.explain_error("migrate", guest, exc))
        except ProxmoxError as exc:
            raise ProxmoxRefused(services.explain_error("migrate", guest, exc))
        return Response(plan.as_dict())


class GuestMigrateAPIView(APIView):
    """Migrate the guest to `target` (202 with the operation; follow it for the percentage)."""

    @extend_schema(request=MigrateRequestSerializer, responses={202: OperationSerializer},
                   summary="Migrate the guest (live for running VMs, restart mode for running containers)")
    def post(self, request, pk):
        guest = api_guest(request, pk)
        body = MigrateRequestSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        try:
            operation = guest_migrate(guest=guest, user=request.user, target=body.validated_data["target"])
        except PermissionDenied as exc:
            audit_log(user=request.user, action="guests.guest_migrate", target=guest, result=AuditResult.DENIED,
                      request=request)
            raise exceptions.PermissionDenied(str(exc))
        audit_log(user=request.user, action="guests.guest_migrate", target=guest, result=AuditResult.ACCEPTED,
                  request=request, detail={"operation": str(operation.pk), "target": body.validated_data["target"]})
        return Response(OperationSerializer(operation, context={"request": request}).data,
                        status=status.HTTP_202_ACCEPTED)


api_urlpatterns = [
    path("guests/<int:pk>/migrate-targets/", GuestMigrateTargetsAPIView.as_view(), name="guest-migrate-targets"),
    path("guests/<int:pk>/migrate/", GuestMigrateAPIView.as_view(), name="guest-migrate"),
]
