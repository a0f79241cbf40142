"""A tenant's members, managed by its admins (and operators): add, change role, remove; audited.

The caller has passed policy.check(actor, "membership.manage", tenant) before these run.
"""

from __future__ import annotations

from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.db import transaction

from apps.core.models import AuditResult
from apps.core.services import audit_log

from . import policy
from .choices import TenantRole
from .models import Membership, Tenant


def tenant_actor(actor, tenant: Tenant):
    """The actor as it stands in `tenant`: a session user acts in any tenant they belong to (the
    active one is only the default); a token acts in its own tenant only."""
    actor = policy.as_actor(actor)
    if actor.sees_everything or actor.tenant_id == tenant.pk or actor.token is not None:
        return actor
    if not Membership.objects.filter(user_id=actor.user.pk, tenant=tenant).exists():
        return actor
    return policy.actor_for_user(actor.user, tenant)


def _role(value: str) -> str:
    if value not in TenantRole.values:
        raise ValidationError({"role": [f"one of {', '.join(TenantRole.values)}, not {value!r}"]})
    return value


def _keep_an_admin(membership: Membership, new_role: str | None) -> None:
    """A tenant never loses its last admin (nobody could manage its members and tokens then)."""
    if membership.role != TenantRole.ADMIN or new_role == TenantRole.ADMIN:
        return
    others = Membership.objects.filter(tenant_id=membership.tenant_id, role=TenantRole.ADMIN).exclude(pk=membership.pk)
    if not others.exists():
        raise ValidationError({"role": [f"{membership.user} is the last admin of {membership.tenant}; "
                                        "make someone else admin first"]})


def member_add(*, tenant: Tenant, username: str, role: str, by, request=None) -> Membership:
    role = _role(role)
    user = get_user_model().objects.filter(username=username, is_active=True).first()
    if user is None:
        raise ValidationError({"username": [f"no active user named {username!r}"]})
    with transaction.atomic():
        if Membership.objects.filter(tenant=tenant, user=user).exists():
            raise ValidationError({"username": [f"{username} is already a member of {tenant}"]})
        membership = Membership.objects.create(tenant=tenant, user=user, role=role)
        audit_log(user=by, action="membership.add", target=membership, result=AuditResult.SUCCESS, request=request,
                  detail={"username": username, "role": role}, tenant_id=tenant.pk)
    return membership


def member_change(*, membership: Membership, role: str, by, request=None) -> Membership:
    role = _role(role)
    with transaction.atomic():
        membership = Membership.objects.select_for_update().get(pk=membership.pk)
        _keep_an_admin(membership, role)
        old = membership.role
        membership.role = role
        membership.save(update_fields=["role", "updated"])
        audit_log(user=by, action="membership.change", target=membership, result=AuditResult.SUCCESS,
                  request=request, detail={"username": membership.user.get_username(), "from": old, "to": role},
                  tenant_id=membership.tenant_id)
    return membership


def member_remove(*, membership: Membership, by, request=None) -> None:
    """Remove the member; their tokens bound to the tenant go with the membership."""
    from .models import ApiToken

    with transaction.atomic():
        membership = Membership.objects.select_for_update().get(pk=membership.pk)
        _keep_an_admin(membership, None)
        audit_log(user=by, action="membership.remove", target=membership, result=AuditResult.SUCCESS,
                  request=request, detail={"username": membership.user.get_username(), "role": membership.role},
                  tenant_id=membership.tenant_id)
        ApiToken.objects.filter(user_id=membership.user_id, tenant_id=membership.tenant_id).delete()
        membership.delete()
