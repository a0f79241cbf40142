"""Reads, always scoped to what `user` may see.

For now: operators (is_operator) see every operation; other users see the operations they
started. Tenancy (apps.permissions) will widen the second rule to their tenant.
"""

from __future__ import annotations

from django.core.exceptions import ValidationError
from django.db.models import QuerySet

from apps.core.scoping import is_operator

from .models import Operation, OperationEvent


def operation_list(*, user, filters: dict | None = None) -> QuerySet[Operation]:
    queryset = Operation.objects.select_related("created_by")
    if not getattr(user, "is_authenticated", False):
        return queryset.none()
    if not is_operator(user):
        queryset = queryset.filter(created_by=user)
    if filters:
        from .filtersets import OperationFilterSet

        queryset = OperationFilterSet(filters, queryset=queryset).qs
    return queryset


def operation_get(*, user, pk) -> Operation | None:
    """The operation if `user` may see it, else None (callers answer 404, never 403)."""
    try:
        return operation_list(user=user).filter(pk=pk).first()
    except (ValueError, TypeError, ValidationError):  # not a UUID: same answer as unknown
        return None


def operation_can_cancel(*, user, operation: Operation) -> bool:
    return getattr(user, "is_authenticated", False) and (
        is_operator(user) or operation.created_by_id == user.pk
    )


def operation_events(*, operation: Operation, after: int = 0) -> QuerySet[OperationEvent]:
    """Events with seq > after, oldest first (a reconnecting client passes its last seq)."""
    return OperationEvent.objects.filter(operation=operation, seq__gt=after).order_by("seq")


def operation_list_for_target(*, user, target) -> QuerySet[Operation]:
    """Operations on one object (a model instance or (type, id)), newest first, for its page."""
    if isinstance(target, (tuple, list)):
        target_type, target_id = str(target[0]), str(target[1])
    else:
        target_type, target_id = target._meta.label_lower, str(target.pk)
    return operation_list(user=user).filter(target_type=target_type, target_id=target_id)
