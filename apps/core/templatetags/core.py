from django import template

from ..fields import EncryptedTextField

register = template.Library()


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
        rows.append((str(field.verbose_name).capitalize(), value))
    return rows
