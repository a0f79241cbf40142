"""The policy itself: who acts (Actor), roles as data (ACTIONS), visibility, check's answers."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Group
from django.test import RequestFactory

from apps.core.models import AuditEntry
from apps.core.scoping import is_operator, scope_queryset
from apps.permissions import policy
from apps.permissions.models import AUDITORS_GROUP, ApiToken, Membership, Tenant

pytestmark = pytest.mark.django_db


@pytest.fixture
def tenants(django_user_model):
    acme = Tenant.objects.create(name="ACME", slug="acme")
    globex = Tenant.objects.create(name="Globex", slug="globex")
    users = {}
    for tenant in (acme, globex):
        for role in ("admin", "member"):
            user = django_user_model.objects.create_user(username=f"{tenant.slug}-{role}", password="x-pass-1234")
            Membership.objects.create(user=user, tenant=tenant, role=role)
            users[f"{tenant.slug}-{role}"] = user
    auditor = django_user_model.objects.create_user(username="auditor", password="x-pass-1234")
    auditor.groups.add(Group.objects.get_or_create(name=AUDITORS_GROUP)[0])
    users["auditor"] = auditor
    users["operator"] = django_user_model.objects.create_user(username="op", password="x-pass-1234", is_staff=True)
    users["nobody"] = django_user_model.objects.create_user(username="nobody", password="x-pass-1234")
    return acme, globex, users


def test_roles_of_each_kind_of_user(tenants):
    acme, globex, users = tenants
    assert policy.actor_for_user(users["operator"]).roles == {policy.OPERATOR}
    auditor = policy.actor_for_user(users["auditor"])
    assert auditor.roles == {policy.AUDITOR} and auditor.read_only and auditor.sees_everything
    admin = policy.actor_for_user(users["acme-admin"])
    assert admin.tenant == acme and admin.role == "admin"
    assert admin.roles == {policy.TENANT_ADMIN, policy.TENANT_MEMBER} and not admin.read_only
    member = policy.actor_for_user(users["globex-member"])
    assert member.tenant == globex and member.roles == {policy.TENANT_MEMBER}
    assert policy.actor_for_user(users["nobody"]).roles == frozenset()


def test_a_user_of_two_tenants_acts_in_the_chosen_one(tenants):
    acme, globex, users = tenants
    user = users["acme-member"]
    Membership.objects.create(user=user, tenant=globex, role="admin")
    assert policy.actor_for_user(user).tenant == acme  # first by name
    assert policy.actor_for_user(user, globex).role == "admin"
    assert policy.actor_for_user(users["globex-member"], acme).tenant == globex  # not a member: own tenant


def test_actions_are_data_and_read_only_actors_change_nothing(tenants):
    acme, globex, users = tenants
    member = policy.actor_for_user(users["acme-member"])
    assert policy.can(member, "guest.power") and policy.can(member, "guest.create")
    assert not policy.can(member, "guest.migrate") and not policy.can(member, "token.manage")
    assert policy.can(policy.actor_for_user(users["acme-admin"]), "token.manage")
    auditor = policy.actor_for_user(users["auditor"])
    assert policy.can(auditor, "guest.view")
    writes = [a for a in policy.ACTIONS if not policy.is_read(a)]
    assert writes and not any(policy.can(auditor, a) for a in writes)
    operator = policy.actor_for_user(users["operator"])
    assert all(policy.can(operator, a) for a in policy.ACTIONS)
    assert not any(policy.can(policy.actor_for_user(users["nobody"]), a) for a in policy.ACTIONS)
    with pytest.raises(ValueError, match="action"):
        policy.can(member, "guest.teleport")


def test_visibility_follows_the_tenant(tenants):
    acme, globex, users = tenants
    member = policy.actor_for_user(users["acme-member"])
    assert list(policy.visible(member, Tenant.objects.all())) == [acme]
    # members see their own membership, admins the tenant's
    names = policy.visible(member, Membership.objects.all()).values_list("user__username", flat=True)
    assert set(names) == {"acme-member"}
    admin = policy.actor_for_user(users["acme-admin"])
    assert set(policy.visible(admin, Membership.objects.all()).values_list("user__username", flat=True)) == \
        {"acme-admin", "acme-member"}
    assert policy.visible(policy.actor_for_user(users["auditor"]), Tenant.objects.all()).count() == 2
    assert policy.visible(policy.actor_for_user(users["nobody"]), Tenant.objects.all()).count() == 0
    # core's entry point delegates (a User or an Actor)
    assert list(scope_queryset(Tenant.objects.all(), users["globex-admin"])) == [globex]
    assert list(scope_queryset(Tenant.objects.all(), admin)) == [acme]
    assert is_operator(users["operator"]) and not is_operator(admin) and not is_operator(users["auditor"])


def test_check_answers_not_visible_or_denied_and_audits_the_denial(tenants):
    acme, globex, users = tenants
    member = policy.actor_for_user(users["acme-member"])
    with pytest.raises(policy.NotVisible):
        policy.check(member, "tenant.view", globex)
    assert not AuditEntry.objects.exists()
    with pytest.raises(policy.Denied):
        policy.check(member, "quota.request", acme)
    entry = AuditEntry.objects.get()
    assert (entry.user, entry.action, entry.result) == (users["acme-member"], "quota.request", "denied")
    assert entry.tenant_id == acme.pk
    assert entry.target_type == "permissions.tenant" and entry.detail["reason"]
    policy.check(policy.actor_for_user(users["acme-admin"]), "quota.request", acme)  # allowed: no raise
    # the tenant admin sees the denial in their tenant's audit; globex's admin does not
    assert policy.visible(policy.actor_for_user(users["acme-admin"]), AuditEntry.objects.all()).count() == 1
    assert policy.visible(policy.actor_for_user(users["globex-admin"]), AuditEntry.objects.all()).count() == 0


def _request(user, session=None, auth=None):
    request = RequestFactory().get("/")
    request.user, request.session = user, session or {}
    if auth is not None:
        request.auth = auth
    return request


def test_request_actor_takes_the_session_tenant_or_the_token(tenants):
    acme, globex, users = tenants
    user = users["acme-member"]
    Membership.objects.create(user=user, tenant=globex, role="member")
    assert policy.actor_for_request(_request(user)).tenant == acme
    assert policy.actor_for_request(_request(user, {"tenant_id": globex.pk})).tenant == globex
    token, _ = ApiToken.objects.create(user, expiry=None, name="ci", tenant=globex, read_only=True)
    actor = policy.actor_for_request(_request(user, {"tenant_id": acme.pk}, auth=token))
    assert actor.tenant == globex and actor.token == token and actor.read_only
    assert not policy.can(actor, "guest.power") and policy.can(actor, "guest.view")
    # a token of a tenant the user left sees nothing of it
    Membership.objects.filter(user=user, tenant=globex).delete()
    actor = policy.actor_for_request(_request(user, auth=token))
    assert actor.tenant is None and policy.visible(actor, Tenant.objects.all()).count() == 0


def test_middleware_puts_a_lazy_actor_on_the_request_and_selectors_see_it(tenants):
    acme, globex, users = tenants
    user = users["globex-member"]
    Membership.objects.create(user=user, tenant=acme, role="admin")
    seen = {}

    def view(request):
        seen["actor"] = request.actor.resolve()
        # a selector given only the user answers for this request's active tenant
        seen["tenants"] = list(scope_queryset(Tenant.objects.all(), request.user))
        return None

    request = _request(user, {"tenant_id": globex.pk})
    policy.ActorMiddleware(view)(request)
    assert seen["actor"].tenant == globex and seen["actor"].role == "member"
    assert seen["tenants"] == [globex]
    # outside the request, the same user gets their default (first) tenant
    assert list(scope_queryset(Tenant.objects.all(), user)) == [acme]
