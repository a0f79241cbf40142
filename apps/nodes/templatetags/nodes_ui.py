"""Small UI helpers for inventory pages: usage bars, ages. Sizes: `bytes_h` (apps.core.units)."""

from django import template
from django.utils import timezone
from django.utils.html import format_html

register = template.Library()


def _level(percent: float) -> str:
    return "bad" if percent >= 90 else "warn" if percent >= 75 else "ok"


@register.simple_tag
def usage_bar(percent, detail="", label=""):
    """A labelled bar: colour by level, text "42 %" plus an optional detail ("12 / 64 GiB")."""
    try:
        percent = max(0.0, min(100.0, float(percent or 0)))
    except (TypeError, ValueError):
        percent = 0.0
    return format_html(
        '<div class="usage" title="{label} {pct}% {detail}">{label_html}'
        '<div class="usage-bar usage-{level}"><span style="width:{width}%"></span></div>'
        '<span class="usage-text">{pct}%<small class="muted">{detail}</small></span></div>',
        label=label, pct=f"{percent:.0f}", detail=f" {detail}" if detail else "", level=_level(percent),
        width=f"{percent:.1f}",
        label_html=format_html('<span class="usage-label">{}</span>', label) if label else "",
    )


@register.filter
def duration_h(seconds):
    """Seconds -> '3d 4h', '5h 2m', '42s'."""
    if seconds is None:
        return "—"
    seconds = int(seconds)
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days}d {hours}h"
    if hours:
        return f"{hours}h {minutes}m"
    if minutes:
        return f"{minutes}m {secs}s"
    return f"{secs}s"


@register.simple_tag
def age(when, stale_after=None, id_prefix=None, pk=None, oob=False):
    """A relative time that the page keeps counting (data-since, see nodes/partials/assets.html);
    past `stale_after` seconds it turns amber, so a stopped sync shows even without a push."""
    id = f"{id_prefix}-{pk}" if id_prefix else None
    if when is None:
        return format_html('<span class="muted"{}{}>never</span>', format_html(' id="{}"', id) if id else "",
                           format_html(' hx-swap-oob="{}"', "true") if oob else "")
    seconds = int((timezone.now() - when).total_seconds())
    return format_html('<time class="age{}"{}{}{} datetime="{}" data-since="{}">{} ago</time>',
                       " stale-age" if stale_after and seconds > stale_after else "",
                       format_html(' id="{}"', id) if id else "",
                       format_html(' data-stale-after="{}"', int(stale_after)) if stale_after else "",
                       format_html(' hx-swap-oob="{}"', "true") if oob else "",
                       when.isoformat(), int(when.timestamp()), duration_h(max(seconds, 0)))


@register.filter
def to_json(value):
    """JSON text for an HTML attribute (autoescaping turns quotes into entities)."""
    import json

    return json.dumps(value, separators=(",", ":"))
