"""Reads owned by core, scoped to the user."""

from django.db.models import QuerySet

from .models import AuditEntry
from .scoping import scope_queryset


def audit_entry_list(*, user) -> QuerySet[AuditEntry]:
    """Operators and auditors see every entry; a tenant admin their tenant's, a member their own
    in it (the rule: apps.permissions.scopes)."""
    return scope_queryset(AuditEntry.objects.select_related("user"), user)
