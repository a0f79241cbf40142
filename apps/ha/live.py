"""Live pushes of HA: the HA page (one rendering per audience: those who may act, those who only
look; the page is not open to tenants) and the HA panel of a guest's page, when someone watches.

The guest panel goes to `haguest-<guest pk>.<audience>`: `manage` (operators: the options form,
move, remove), `view` (auditors: state, failover target, timeline) and `tenant` (the guest's
tenant: its state and timeline only, no placement, which names other guests' load). A page joins
the one group of its viewer's audience ({% ha_panel %} adds it to the page's live groups), and the
group check admits a user to exactly that one, so each rendering reaches only its audience, as
apps.guests.services.push_guests does with `cluster-<id>` and `tenant-<id>`.
"""

from __future__ import annotations

import logging

from django.template.loader import render_to_string

from apps.core import live
from apps.nodes import presence

logger = logging.getLogger(__name__)

GUEST_AUDIENCES = ("manage", "view", "tenant")
GUEST_PREFIX = "haguest"


def group(cluster_id: int, *, manage: bool = True) -> str:
    """`ha-<id>` for those who may act (the panel has buttons), `haview-<id>` for read-only viewers."""
    return f"{'ha' if manage else 'haview'}-{cluster_id}"


def render_cluster(cluster, *, oob: bool, manage: bool, context: dict | None = None) -> str:
    from .views import cluster_context

    return render_to_string("ha/partials/ha_cluster.html",
                            {**(context or cluster_context(cluster)), "oob": oob, "may_manage": manage})


def push_cluster(cluster_id: int, events: bool = False) -> None:
    from apps.nodes.models import Cluster

    try:
        if not presence.watcher_count(f"cluster-{cluster_id}"):
            return
        cluster = Cluster.objects.filter(pk=cluster_id).first()
        if cluster is None:
            return
        from .views import cluster_context

        context = cluster_context(cluster)  # computed once, rendered once per audience
        for manage in (True, False):
            live.push(group(cluster_id, manage=manage), html=render_cluster(cluster, oob=True, manage=manage,
                                                                            context=context))
    except Exception:  # best effort: the page re-renders from the database
        logger.exception("pushing the HA page of cluster %s failed", cluster_id)


# -- the HA panel of a guest's page ------------------------------------------------------------

def guest_group(guest_id: int, audience: str) -> str:
    return f"{GUEST_PREFIX}-{guest_id}.{audience}"


def guest_audience(actor, guest) -> str:
    """Which rendering of `guest`'s HA panel `actor` gets (they must see the guest)."""
    from apps.permissions.policy import can

    if can(actor, "ha.manage", guest):
        return "manage"
    return "view" if can(actor, "ha.view") else "tenant"


def may_watch_guest(user, key: str) -> bool:
    """`haguest-<pk>.<audience>`: a user who sees the guest, for the audience that is theirs."""
    from apps.guests.selectors import guest_list

    pk, _, audience = key.partition(".")
    if not pk.isdigit() or audience not in GUEST_AUDIENCES:
        return False
    guest = guest_list(user=user).filter(pk=int(pk)).first()
    return guest is not None and guest_audience(user, guest) == audience


def guest_panel_context(guest, audience: str) -> dict:
    """What the guest page's HA panel shows to `audience` (see the module doc); the first render
    ({% ha_panel %}) and every push use it."""
    from .explain import explain
    from .forms import HaResourceForm
    from .models import HaEvent, HaResource

    resource = HaResource.objects.filter(cluster_id=guest.cluster_id, vmid=guest.vmid).select_related("cluster").first()
    if resource is not None and audience == "tenant" and resource.guest_id != guest.pk:
        resource = None  # an HA id left from another guest with this vmid: not theirs to see
    events = []
    if resource is not None:
        rows = HaEvent.objects.filter(cluster_id=guest.cluster_id, sid=resource.sid)
        if audience == "tenant":
            rows = rows.filter(tenant_id=guest.tenant_id) if guest.tenant_id else rows.none()
        events = list(rows[:10])
    manage = audience == "manage"
    placement = explain(resource) if resource is not None and audience in ("manage", "view") else None
    form = nodes = None
    if manage:
        initial = {"state": resource.request_state or "started", "max_restart": resource.max_restart,
                   "max_relocate": resource.max_relocate, "failback": bool(resource.failback),
                   "comment": resource.comment} if resource is not None else {}
        form = HaResourceForm(initial=initial)
        nodes = list(guest.cluster.nodes.order_by("name").values_list("name", flat=True))
    return {"guest": guest, "resource": resource, "nodes": nodes or [], "events": events, "placement": placement,
            "form": form, "may_manage": manage, "audience": audience}


def render_guest_panel(guest, audience: str, *, oob: bool = False, extra: dict | None = None) -> str:
    return render_to_string("ha/partials/guest_ha.html",
                            {**guest_panel_context(guest, audience), "oob": oob, **(extra or {})})


def push_guest_panels(guest_ids) -> None:
    """Push the HA panel of these guests to each audience that has one open (one Redis round trip
    to find out; nothing is rendered for a panel nobody watches)."""
    from apps.guests.models import Guest

    ids = sorted({pk for pk in guest_ids if pk})
    if not ids:
        return
    try:
        groups = {(pk, audience): guest_group(pk, audience) for pk in ids for audience in GUEST_AUDIENCES}
        counts = presence.watcher_counts(list(groups.values()))
        watched = [key for key, name in groups.items() if counts.get(name)]
        if not watched:
            return
        guests = Guest.objects.select_related("cluster", "node").in_bulk({pk for pk, _ in watched})
        for pk, audience in watched:
            if pk in guests:
                live.push(groups[(pk, audience)], html=render_guest_panel(guests[pk], audience, oob=True))
    except Exception:  # best effort: the page shows the truth on its next load
        logger.exception("pushing the HA panel of guests %s failed", ids)
