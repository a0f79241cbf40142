"""Small helpers every guest action shares: operator check, Proxmox refusals in the user's words,
starting and following tasks, the targeted re-read after an action, and the view/API answers."""

from __future__ import annotations

import re

from django.core.exceptions import PermissionDenied, ValidationError
from django.http import Http404
from django.shortcuts import render
from django.template.loader import render_to_string
from django.utils.cache import patch_vary_headers
from rest_framework import status
from rest_framework.response import Response

from apps.core import live
from apps.core import api as _core_api  # noqa: F401  (loads DRF generics before our schema decorators run)
from apps.core.models import AuditResult
from apps.core.scoping import is_operator
from apps.core.services import audit_log
from apps.operations.api.serializers import OperationSerializer
from apps.operations.models import Operation
from apps.operations.services import OperationReporter, follow_upid
from apps.proxmox import ProxmoxError, ProxmoxTaskError, ProxmoxUnreachable

from .. import services
from ..models import Guest
from ..selectors import guest_get


class ActionRefused(Exception):
    """Proxmox refused a synchronous call: `message` in the user's words with Proxmox's text at the
    end, `proxmox_message` the exact text, `status` the HTTP answer the API gives (409 / 502)."""

    def __init__(self, message: str, *, proxmox_message: str = "", status: int = 409):
        super().__init__(message)
        self.message, self.proxmox_message, self.status = message, proxmox_message, status


# Reasons the power actions' explain_error does not know, in the user's words.
_MORE_REASONS = [
    (re.compile(r"protection mode enabled"),
     "protection is on; turn it off in the guest's settings first"),
    (re.compile(r"used in HA resources and purge parameter not set"),
     "it is managed by HA; ask to purge its HA and backup-job entries too"),
    (re.compile(r"is running - destroy failed|container is running"), "it is running; stop it first"),
    (re.compile(r"contains snapshots"), "it has snapshots; delete them first"),
    (re.compile(r"convert a (VM|CT) to template if"), "it is running; shut it down first"),
    (re.compile(r"template to a template"), "it is already a template"),
    (re.compile(r"shrinking disks is not supported"), "disks can only grow"),
    (re.compile(r"not enough free space on storage '(?P<s>[^']+)'"), "storage {s} is full"),
    (re.compile(r"snapshot name '(?P<n>[^']+)' already used"), "a snapshot named {n} already exists"),
    (re.compile(r"snapshot '(?P<n>[^']+)' does not exist"), "snapshot {n} does not exist (any more)"),
    (re.compile(r"snapshot feature is not available"), "one of its disks is on storage without snapshots"),
    (re.compile(r"Linked clone feature is not supported"), "its storage cannot make linked clones; use a full clone"),
    (re.compile(r"uses local storage"), "its disks are on local storage, so it can only be cloned on its own node"),
    (re.compile(r"config file already exists|already exists"), "that VMID is already used"),
]


def explain(verb: str, guest: Guest, exc: ProxmoxError) -> str:
    """`Could not <verb> VM 100 (web-01): <reason in words>. Proxmox said: <exact message>`."""
    text = exc.message or str(exc)
    if not isinstance(exc, ProxmoxUnreachable) and not re.search(r"is locked|no quorum", text):
        for pattern, reason in _MORE_REASONS:
            match = pattern.search(text)
            if match:
                return f"Could not {verb} {guest.kind} {guest}: {reason.format(**match.groupdict())}. " \
                       f"Proxmox said: {text}"
    return services.explain_error(verb, guest, exc)


def require_operator(user, guest: Guest) -> None:
    if not is_operator(user):
        raise PermissionDenied("only operators may change guests until tenancy exists")
    if guest.node_id is None:
        raise ValidationError({"node": [f"the node of {guest} is not known yet; wait for the next sync"]})


def start_task(client, guest: Guest, verb: str, method: str, path: str, **params):
    """Call Proxmox for `guest`; a refusal raises GuestActionError in the user's words."""
    try:
        return client.request(method, path, **params)
    except ProxmoxError as exc:
        raise services.GuestActionError(explain(verb, guest, exc), status=exc.status) from exc


def follow(operation, client, guest: Guest, verb: str, upid: str, reporter, **kwargs) -> None:
    try:
        follow_upid(operation, client, guest.node.name, upid, reporter=reporter, **kwargs)
    except ProxmoxTaskError as exc:
        raise services.GuestActionError(explain(verb, guest, exc), status=exc.status) from exc


def refresh_after(guest: Guest, client, reporter: OperationReporter) -> None:
    """Targeted re-read of this guest (config + digest, snapshots, tasks, status) after an action,
    then push its snapshot tree to the open pages (`guest-<pk>`)."""
    try:
        services._status_update(guest, client)
        services.guest_refresh(guest=guest, client=client)
    except ProxmoxError as exc:
        reporter.event(f"Could not re-read the guest from Proxmox: {exc}", level="warning")
        return
    push_snapshot_tree(guest.pk)


def push_snapshot_tree(guest_id: int) -> None:
    from .snapshots.selectors import snapshot_tree_context  # lazy: the snapshots package imports this module

    guest = Guest.objects.select_related("node", "cluster").filter(pk=guest_id).first()
    if guest is None:
        return
    html = render_to_string("guests/snapshots/tree.html", {**snapshot_tree_context(guest), "oob": True})
    live.push(f"guest-{guest_id}", html=html, data={"type": "guest.snapshots", "id": guest_id})


def guest_or_404(request, pk) -> Guest:
    guest = guest_get(user=request.user, pk=pk)
    if guest is None:
        raise Http404("No such guest.")
    return guest


def partial(request, template: str, context: dict, status_code: int = 200):
    response = render(request, template, context, status=status_code)
    patch_vary_headers(response, ("HX-Request",))
    return response


def error_text(exc: ValidationError) -> str:
    return "; ".join(f"{k}: {m}" if k != "__all__" else m for k, msgs in exc.message_dict.items() for m in msgs)


def accepted(request, operation: Operation) -> Response:
    return Response(OperationSerializer(operation, context={"request": request}).data, status=status.HTTP_202_ACCEPTED)


def refused(exc: ActionRefused) -> Response:
    return Response({"detail": exc.message, "proxmox_message": exc.proxmox_message}, status=exc.status)


def audit(request, action: str, guest: Guest, operation: Operation | None = None, result=AuditResult.ACCEPTED,
          **detail) -> None:
    if operation is not None:
        detail["operation"] = str(operation.pk)
    audit_log(user=request.user, action=action, target=guest, result=result, request=request, detail=detail or None)
