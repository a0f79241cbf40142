"""Small helpers every guest action shares: the policy check, Proxmox refusals in the user's words,
starting and following tasks, the targeted re-read after an action, and the guest lookup and
partial the views use (the action views themselves: .base on apps.core's generic ones)."""

from __future__ import annotations

from django.core.exceptions import ValidationError
from django.http import Http404
from django.shortcuts import render
from django.template.loader import render_to_string
from django.utils.cache import patch_vary_headers

from apps.core import live
from apps.permissions.policy import check
from apps.operations.services import OperationReporter
from apps.proxmox import ProxmoxError

from .. import services
from ..models import Guest
from ..selectors import guest_get


class ActionRefused(Exception):
    """Proxmox refused a synchronous call: `message` in the user's words with Proxmox's text at the
    end, `proxmox_message` the exact text, `status` the HTTP answer the API gives (409 / 502)."""

    def __init__(self, message: str, *, proxmox_message: str = "", status: int = 409):
        super().__init__(message)
        self.message, self.proxmox_message, self.status = message, proxmox_message, status


def explain(verb: str, guest: Guest, exc: ProxmoxError) -> str:
    """`Could not <verb> VM 100 (web-01): <reason in words>. Proxmox said: <exact message>`."""
    return services.explain_error(verb, guest, exc)


def require_allowed(user, guest: Guest, action: str) -> None:
    """The policy's answer for `action` on `guest` (404 unseen, 403 audited), then a known node."""
    check(user, action, guest)
    if guest.node_id is None:
        raise ValidationError({"node": [f"the node of {guest} is not known yet; wait for the next sync"]})


# Starting a task and following it, with the one error table: apps.guests.services.
explained = services.explained
follow = services.follow


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
