"""Who may see what. The one place that knows what an operator is; selectors use it.

Tenancy comes later (apps.permissions): until then operators see everything and everyone
else sees nothing that is not explicitly theirs.
"""

from django.db.models import QuerySet


def is_operator(user) -> bool:
    """Platform admin: an active staff user."""
    return bool(user is not None and user.is_authenticated and user.is_active and user.is_staff)


def scope_queryset(queryset: QuerySet, user) -> QuerySet:
    """`queryset` for operators, an empty one for everyone else (until tenants exist)."""
    return queryset if is_operator(user) else queryset.none()
