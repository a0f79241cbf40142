"""Reads: leases, scoped by the policy (a tenant's users see their tenant's guests' leases)."""

from apps.permissions.policy import visible

from .models import Lease


def lease_list(*, user):
    return visible(user, Lease.objects.select_related("guest__tenant", "guest__cluster", "guest__node"))


def lease_get(*, user, pk) -> Lease | None:
    return lease_list(user=user).filter(pk=pk).first()
