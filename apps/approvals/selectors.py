"""Reads: approval requests, scoped by the policy (a tenant's users see their tenant's)."""

from apps.permissions.policy import visible

from .models import ApprovalRequest


def approval_list(*, user, status: str | None = None):
    queryset = visible(user, ApprovalRequest.objects.select_related("tenant", "created_by", "decided_by"))
    return queryset.filter(status=status) if status else queryset


def approval_get(*, user, pk) -> ApprovalRequest | None:
    return approval_list(user=user).filter(pk=pk).first()
