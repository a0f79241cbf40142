"""Serialize and push operation events to the Channels group `operation-<uuid>`.

One message carries both forms: `data` (JSON for API clients, with `seq`) and `html` (the htmx
oob fragment), so a subscriber picks its format without a second render.
"""

from __future__ import annotations

from django.template.loader import render_to_string

from apps.core import live as core_live


def group_name(operation_id) -> str:
    return f"operation-{operation_id}"


def operation_state(operation) -> dict:
    return {
        "id": str(operation.pk),
        "status": operation.status,
        "progress": operation.progress,
        "eta": operation.eta,
        "error": operation.error,
        "finished": operation.finished.isoformat() if operation.finished else None,
    }


def event_data(operation, event) -> dict:
    return {
        "type": "event",
        "seq": event.seq,
        "level": event.level,
        "message": event.message,
        "progress": event.progress,
        "created": event.created.isoformat(),
        "operation": operation_state(operation),
    }


def progress_context(operation) -> dict:
    """Context of the progress partial: the operation and all its events so far."""
    return {"operation": operation, "events": list(operation.events.order_by("seq"))}


def render_event_html(operation, event) -> str:
    """htmx oob fragment for one event: the status line + the event appended to the step list;
    once the operation is final, the whole panel (without ws-connect, so htmx closes the socket)."""
    if operation.is_active:
        return render_to_string("operations/partials/operation_live.html", {"operation": operation, "event": event})
    return render_panel_html(operation, oob=True)


def render_panel_html(operation, *, oob: bool = False) -> str:
    return render_to_string("operations/partials/operation_progress.html",
                            {**progress_context(operation), "panel_oob": oob})


def render_body_html(operation) -> str:
    """The panel's inner body, oob: what a (re)connecting htmx socket gets instead of a replay."""
    return render_to_string("operations/partials/operation_body.html",
                            {**progress_context(operation), "body_oob": True})


def push_event(operation, event) -> bool:
    """Send to `operation-<id>` through apps.core.live (message `live.message`, so the generic
    /ws/live/ consumer can carry it too). Best effort: the event is already saved."""
    if changes_running_list(operation, event):
        push_dashboard_stale(operation)
    return core_live.push(group_name(operation.pk), html=render_event_html(operation, event),
                          data=event_data(operation, event))


def changes_running_list(operation, event) -> bool:
    """Queued (first event), started, or finished: what moves an operation on the dashboard."""
    return event.seq == 1 or not operation.is_active or event.message == "Started"


def push_dashboard_stale(operation) -> None:
    """Tell open dashboards of the operation's cluster and of its author to re-read their running
    operations (a trigger: each page fetches its own user's list)."""
    html = render_to_string("dashboard/partials/dashboard_stale.html")
    groups = [f"cluster-{operation.cluster_id}"] if operation.cluster_id else []
    if operation.created_by_id:
        groups.append(f"user-{operation.created_by_id}")
    if operation.tenant_id:  # the tenant's dashboards (they listen to tenant-<id>, not cluster-<id>)
        groups.append(f"tenant-{operation.tenant_id}")
    for group in groups:
        core_live.push(group, html=html, data={"type": "operations.changed", "id": str(operation.pk)})
