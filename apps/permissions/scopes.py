"""Scope rules of the models permissions and core own, and who may subscribe to `tenant-<id>`.

Higher apps register their own models' rules in their AppConfig.ready (see policy.register_scope).
"""

from __future__ import annotations

import re

from django.db.models import Q

from . import policy
from .choices import TenantRole


def _own_tenant(actor) -> Q:
    return Q(pk=actor.tenant_id) if actor.tenant_id is not None else Q(pk__in=[])


def _tenant_admin_or_own(user_field: str):
    """The tenant's rows for its admins; a member's own rows only."""
    def rule(actor) -> Q:
        if actor.tenant_id is None:
            return Q(pk__in=[])
        if actor.role == TenantRole.ADMIN:
            return Q(tenant_id=actor.tenant_id)
        return Q(tenant_id=actor.tenant_id, **{user_field: actor.user.pk})
    return rule


def register() -> None:
    from apps.core.models import AuditEntry

    from .models import (
        ApiToken,
        Membership,
        Quota,
        QuotaRequest,
        Reservation,
        Tenant,
        TenantFile,
        TenantPool,
    )

    policy.register_scope(Tenant, _own_tenant)
    policy.register_scope(TenantPool, lambda actor: policy.tenant_q(actor))
    policy.register_scope(Quota, lambda actor: policy.tenant_q(actor))
    policy.register_scope(Reservation, lambda actor: policy.tenant_q(actor))
    policy.register_scope(TenantFile, lambda actor: policy.tenant_q(actor))
    policy.register_scope(QuotaRequest, _tenant_admins)
    policy.register_scope(Membership, _tenant_admin_or_own("user_id"))
    policy.register_scope(ApiToken, _tenant_admin_or_own("user_id"))
    policy.register_scope(AuditEntry, _audit)


def _tenant_admins(actor) -> Q:
    """The tenant's rows for its admins; nothing for its members."""
    if actor.tenant_id is None or actor.role != TenantRole.ADMIN:
        return Q(pk__in=[])
    return Q(tenant_id=actor.tenant_id)


def _audit(actor) -> Q:
    """Everyone sees their own entries (logins, refusals); a tenant admin also the tenant's."""
    own = Q(user_id=actor.user.pk)
    if actor.tenant_id is not None and actor.role == TenantRole.ADMIN:
        return own | Q(tenant_id=actor.tenant_id)
    return own


def may_subscribe_tenant(user, key: str) -> bool:
    """`tenant-<id>`: pushes rendered for one tenant; its members (any role) may listen."""
    if not key.isdigit():
        return False
    actor = policy.as_actor(user)
    if actor.sees_everything:
        return True
    from .models import Membership

    return Membership.objects.filter(user_id=actor.user.pk, tenant_id=int(key)).exists()


_CLUSTER_GROUP = re.compile(r"^cluster-\d+$")


def audience_groups(user, groups: list[str]) -> list[str]:
    """The groups a page should really join: a tenant user's page listens to its tenant's group
    instead of `cluster-<id>` (whose fragments are rendered for operators)."""
    actor = policy.as_actor(user)
    if actor.sees_everything or not actor.is_authenticated:
        return list(groups)
    out = []
    for group in groups:
        if _CLUSTER_GROUP.match(group):
            group = f"tenant-{actor.tenant_id}" if actor.tenant_id is not None else ""
        if group and group not in out:
            out.append(group)
    return out


def connect_signals() -> None:
    """A membership added, changed or removed: that user's open sockets re-check their groups."""
    from django.db import transaction
    from django.db.models.signals import post_delete, post_save

    from apps.core import live

    from .models import Membership

    def changed(sender, instance, **kwargs):
        user_id = instance.user_id
        transaction.on_commit(lambda: live.reauth(user_id))

    # weak=False: `changed` is local to this function and would be collected otherwise.
    post_save.connect(changed, sender=Membership, weak=False, dispatch_uid="permissions.membership_reauth_save")
    post_delete.connect(changed, sender=Membership, weak=False, dispatch_uid="permissions.membership_reauth_delete")
