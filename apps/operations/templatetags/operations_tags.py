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


@register.simple_tag
def created_guest(operation):
    """The guest a succeeded operation created (create, clone: `result["guest"]`), if it still
    exists, so the panel can link to it; None otherwise."""
    from django.apps import apps  # by name: operations never imports the apps above it

    guest_pk = (operation.result or {}).get("guest") if isinstance(operation.result, dict) else None
    if operation.status != "succeeded" or not guest_pk:
        return None
    return apps.get_model("guests", "Guest").objects.filter(pk=guest_pk).first()


@register.simple_tag
def operation_target(operation):
    """The object an operation acts on (`target_type` is an app_label.model label), if it still
    exists; None otherwise (or for targets that are not rows, e.g. a reserved VMID)."""
    from django.apps import apps

    if not operation.target_type or not operation.target_id:
        return None
    try:
        model = apps.get_model(operation.target_type)
        return model._default_manager.filter(pk=operation.target_id).first()
    except (LookupError, ValueError, TypeError):
        return None
