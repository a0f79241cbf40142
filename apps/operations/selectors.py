"""Reads, always scoped to what `user` may see.

apps.permissions.policy decides: operators and auditors see every operation; a tenant's users
the operations of their tenant (Operation.tenant).
"""

from __future__ import annotations

from django.core.exceptions import ValidationError
from django.db.models import QuerySet

from apps.core.scoping import scope_queryset

from .models import Operation, OperationEvent


def operation_list(*, user, filters: dict | None = None) -> QuerySet[Operation]:
    queryset = scope_queryset(Operation.objects.select_related("created_by"), user)
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
    from apps.permissions.policy import can

    return can(user, "operation.cancel", operation)


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
