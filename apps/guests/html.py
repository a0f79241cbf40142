"""The guest markup rendered the most: the status badges, the node link and the list row.

A page of the guests list is 100 rows of a dozen cells, and every sync that sees guests change
pushes their status and node to open pages. As Django templates (a row with its two partials) the
rows cost ~15 ms of CPU per page, most of the page once django-tables2's per-cell work was gone;
built here they cost ~2 ms (issue 11). The partials guests/partials/guest_status.html and
guest_node.html are these functions (template tags of `guests_html`), so the list rows, the page
headers and the live fragments still come from one place.

Values are escaped as the templates escaped them (`escape`, i.e. Django's autoescape).
"""

from __future__ import annotations

from django.utils.safestring import SafeString, mark_safe

from apps.core.rendering import pk_url
from apps.core.rendering import text as _text
from apps.core.units import binary_size

from .choices import GuestStatus, GuestType

_OOB = ' hx-swap-oob="true"'
_STATUS_LABELS = {value: str(label) for value, label in GuestStatus.choices}
_TYPE_LABELS = {value: str(label) for value, label in GuestType.choices}


def status_inner(guest) -> str:
    status = guest.status
    label = _STATUS_LABELS.get(status, status)
    html = f'<span class="badge badge-{_text(status)}">{_text(label)}</span>'
    if guest.template:
        html += ' <span class="badge">template</span>'
    if guest.lock:
        lock = _text(guest.lock)
        html += f' <span class="badge badge-pending" title="locked by a {lock} task">🔒 {lock}</span>'
    if guest.hastate:
        html += f' <span class="badge" title="HA state">HA {_text(guest.hastate)}</span>'
    return html


def status_html(guest, *, oob=False, gone=False) -> SafeString:
    """`<span id="guest-<pk>-status">`: the status badge, template, lock and HA state; `gone`: deleted."""
    inner = '<span class="badge badge-unknown">deleted</span>' if gone else status_inner(guest)
    return mark_safe(f'<span id="guest-{guest.pk}-status" class="guest-status"{_OOB if oob else ""}>{inner}</span>')


def node_html(guest, *, oob=False) -> SafeString:
    """`<span id="guest-<pk>-node">`: a link to the node the guest runs on, "?" when unknown."""
    node = guest.node if guest.node_id is not None else None
    inner = f'<a href="{pk_url("nodes:node", node.pk)}">{_text(node.name)}</a>' if node is not None else "?"
    return mark_safe(f'<span id="guest-{guest.pk}-node" class="guest-node"{_OOB if oob else ""}>{inner}</span>')


def row_html(guest, parity: str = "") -> str:
    """One `<tr>` of the guests table, the columns of apps.guests.tables.GuestTable in order."""
    pk = guest.pk
    url = pk_url("guests:guest", pk)
    label = _text(guest)
    kind = guest.kind
    name = f'<a href="{url}">{_text(guest.name)}</a>' if guest.name else "—"
    tags = "".join(f'<span class="badge tag">{_text(t)}</span> ' for t in guest.tags or ())
    return (
        f'<tr class="{parity}">'
        f'<td><input type="checkbox" name="ids" value="{pk}" form="guest-bulk-form" aria-label="Select {label}"'
        f' data-confirm-label="{kind} {label}"></td>'
        f'<td><a href="{url}">{guest.vmid}</a></td>'
        f'<td>{name}</td>'
        f'<td>{_text(_TYPE_LABELS.get(guest.type, guest.type))}</td>'
        f'<td>{status_html(guest)}</td>'
        f'<td>{node_html(guest)}</td>'
        f'<td>{_text(guest.cluster.name)}</td>'
        f'<td>{_text(guest.pool)}</td>'
        f'<td>{tags}</td>'
        f'<td>{guest.maxcpu}</td>'
        f'<td>{binary_size(guest.maxmem)}</td>'
        f'<td>{binary_size(guest.maxdisk)}</td>'
        "</tr>\n"
    )
