from django import template

register = template.Library()


@register.filter
def seconds(value) -> str:
    """42 -> '42 s', 125 -> '2 min 5 s', 3700 -> '1 h 1 min'."""
    try:
        total = int(value)
    except (TypeError, ValueError):
        return ""
    hours, rest = divmod(total, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours} h {minutes} min"
    if minutes:
        return f"{minutes} min {secs} s"
    return f"{secs} s"
