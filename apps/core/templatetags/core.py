from django import template

from ..fields import EncryptedTextField

register = template.Library()

# Internal field names whose verbose name reads like code ("Target repr"): what a person reads.
FIELD_LABELS = {"target_repr": "Target", "target_type": "Target type", "target_id": "Target ID",
                "remote_addr": "From address", "username": "User", "pve_cluster_name": "Proxmox cluster name",
                "pve_version": "Proxmox version", "api_url": "API URL", "vmid": "VM ID"}


@register.filter
def model_fields(obj):
    """(label, display value) for each concrete field, for the generic detail page.
    Encrypted fields are never shown."""
    rows = []
    for field in obj._meta.concrete_fields:
        if isinstance(field, EncryptedTextField) or field.name == "password":
            continue
        if field.choices:
            value = getattr(obj, f"get_{field.name}_display")()
        else:
            value = getattr(obj, field.name)
        rows.append((FIELD_LABELS.get(field.name) or str(field.verbose_name).capitalize(), value))
    return rows


@register.simple_tag(takes_context=True)
def live_audience(context, groups):
    """The page's live groups as its user should join them (see apps.core.live.audience)."""
    from .. import live

    request = context.get("request")
    return live.audience(getattr(request, "user", None), groups)
