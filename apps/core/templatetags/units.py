"""The size filters, registered as template builtins (settings TEMPLATES OPTIONS "builtins")."""

from django import template

from apps.core.units import binary_size, used_of

register = template.Library()
register.filter("bytes_h", binary_size)
register.filter("of_h", used_of)
