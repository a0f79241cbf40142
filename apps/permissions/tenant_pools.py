"""An operator assigns a Proxmox pool to a tenant on a cluster; the portal creates the pool on
Proxmox when it is missing. Proxmox is asked first, outside any database transaction (never
while rows are locked); the TenantPool row and its audit entry follow in one transaction. Guests
in the pool become the tenant's at the next sync."""

from __future__ import annotations

from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction

from apps.core.models import AuditResult
from apps.core.services import audit_log
from apps.proxmox import ProxmoxError
from apps.proxmox import pools as pve_pools

from . import policy
from .models import TenantPool


def tenant_pool_assign(*, tenant, cluster, pool: str, actor, request=None) -> tuple[TenantPool, bool]:
    """Give `tenant` the pool `pool` on `cluster`, creating it on Proxmox if missing.
    Returns (tenant_pool, created_on_proxmox). Operators only (policy tenant.manage: 403, audited);
    ValidationError naming `pool` (bad id, another tenant's, Proxmox refused) or `cluster` (the
    tenant has a pool there already: one per cluster). Nothing is saved when Proxmox fails."""
    actor = policy.as_actor(actor)
    policy.check(actor, "tenant.manage", tenant, request=request)
    pool = (pool or "").strip()
    error = pve_pools.poolid_error(pool)
    if error:
        raise ValidationError({"pool": [error]})
    owner = TenantPool.objects.filter(cluster=cluster, pool=pool).select_related("tenant").first()
    if owner is not None:
        raise ValidationError({"pool": [f"pool {pool!r} on {cluster} is already {owner.tenant.name}'s"]})
    present = TenantPool.objects.filter(cluster=cluster, tenant=tenant).first()
    if present is not None:
        raise ValidationError({"cluster": [
            f"{tenant.name} has the pool {present.pool!r} on {cluster} already (one pool per cluster)"]})
    if transaction.get_connection().in_atomic_block:
        raise RuntimeError("tenant_pool_assign calls Proxmox: call it outside a database transaction")
    client = cluster.client()
    try:
        created = pve_pools.pool_ensure(client, pool, comment=f"tenant {tenant.slug} (datacenter portal)")
    except ProxmoxError as exc:
        audit_log(user=actor.user, action="tenant.pool_assign", target=tenant, result=AuditResult.FAILURE,
                  request=request, detail={"pool": pool, "cluster": cluster.pk, "error": str(exc)[:500]})
        raise ValidationError({"pool": [f"Proxmox could not create the pool {pool!r} on {cluster}: {exc}"]}) from exc
    finally:
        client.close()
    try:
        with transaction.atomic():
            tenant_pool = TenantPool.objects.create(tenant=tenant, cluster=cluster, pool=pool)
            audit_log(user=actor.user, action="tenant.pool_assign", target=tenant, result=AuditResult.SUCCESS,
                      request=request, detail={"pool": pool, "cluster": cluster.pk, "created_on_proxmox": created})
    except IntegrityError:  # another assignment of the same pool won the race
        raise ValidationError({"pool": [f"pool {pool!r} on {cluster} was just given to another tenant"]}) from None
    return tenant_pool, created
