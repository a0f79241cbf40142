"""Reads owned by core, scoped to the user."""

from django.db.models import QuerySet

from .models import AuditEntry
from .scoping import is_operator


def audit_entry_list(*, user) -> QuerySet[AuditEntry]:
    """Operators see every entry; other users see their own actions only."""
    queryset = AuditEntry.objects.select_related("user")
    if is_operator(user):
        return queryset
    if user is None or not user.is_authenticated:
        return queryset.none()
    return queryset.filter(user=user)
