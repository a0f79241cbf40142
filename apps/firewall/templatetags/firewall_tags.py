from django import template

register = template.Library()


@register.filter
def item(mapping, key):
    """`rule|item:"icmp-type"`: a dict value whose key is no template identifier."""
    try:
        return mapping.get(key, "")
    except AttributeError:
        return ""


@register.filter
def errors_for(errors, key):
    return (errors or {}).get(key, [])


@register.filter
def chart_json(value):
    """A counts dict (apps.firewall.ips.alert_counts) as the JSON charts.js reads, for an attribute."""
    import json

    return json.dumps({k: value[k] for k in ("labels", "x", "series")}, separators=(",", ":"))
