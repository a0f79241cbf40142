"""Pages: API tokens (create: the secret shown once; list with last use; revoke), tenants (quota
usage), a tenant (members, quota usage) and quota requests (a tenant admin asks, operators decide).
Scoped by the policy: 404 outside it, 403 seen but not allowed."""

from __future__ import annotations

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.db.models import Case, Count, Q, When
from django.http import Http404
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import timezone
from django.views import View

from . import members as member_services
from . import policy
from .api.views import tenant_list, token_list
from .choices import QuotaRequestState
from .forms import (
    MemberAddForm,
    MemberRoleForm,
    QuotaDecisionForm,
    QuotaRequestForm,
    TokenForm,
)
from .models import Membership, Tenant, TenantPool
from .quota_requests import (
    describe_limits,
    quota_request_create,
    quota_request_decide,
    quota_request_list,
)
from .tokens import issue_token, may_revoke, revoke_token


def _errors(exc: ValidationError) -> str:
    if hasattr(exc, "error_dict"):
        return "; ".join(f"{field}: {' '.join(msgs)}" for field, msgs in exc.message_dict.items())
    return " ".join(exc.messages)


class TokenListView(View):
    template_name = "permissions/token_list.html"

    def _render(self, request, form, created=None, secret=None, status=200):
        actor = policy.actor_for_request(request)
        tokens = list(token_list(actor=request).order_by("-created"))
        for token in tokens:
            token.revocable = may_revoke(actor, token)
        return render(request, self.template_name, {
            "title": "API tokens", "form": form, "tokens": tokens, "created": created, "secret": secret,
            "may_create": policy.can(actor, "token.create"), "now": timezone.now(),
        }, status=status)

    def get(self, request):
        return self._render(request, TokenForm(actor=policy.actor_for_request(request)))

    def post(self, request):
        actor = policy.actor_for_request(request)
        policy.check(actor, "token.create", request=request)
        form = TokenForm(request.POST, actor=actor)
        if not form.is_valid():
            return self._render(request, form, status=400)
        data = form.cleaned_data
        try:
            token, secret = issue_token(request.user, name=data["name"], days=data["expiry_days"],
                                        tenant=data["tenant"], default_tenant=actor.tenant,
                                        read_only=data["read_only"], request=request)
        except ValidationError as exc:
            for field, msgs in exc.message_dict.items():
                form.add_error(field if field in form.fields else None, msgs)
            return self._render(request, form, status=400)
        # Rendered, not redirected: the secret is shown in this answer only.
        return self._render(request, TokenForm(actor=actor), created=token, secret=secret)


class TokenRevokeView(View):
    def post(self, request, key):
        actor = policy.actor_for_request(request)
        token = get_object_or_404(token_list(actor=request), token_key=key)
        if not may_revoke(actor, token):
            policy.check(actor, "token.manage", token, request=request)
        revoke_token(token, by=request.user, request=request)
        messages.success(request, f"Token “{token.name}” revoked: requests carrying it are refused from now on.")
        return redirect("permissions:token_list")


class TenantListView(View):
    """Tenants with their pools and quota usage (bars: used and reserved of each limit) and, for
    operators, how many quota requests wait."""

    def get(self, request):
        from .quotas import quota_preview

        actor = policy.actor_for_request(request)
        tenants = list(tenant_list(actor=request).annotate(
            pending_requests=Count("quota_requests", filter=Q(quota_requests__state=QuotaRequestState.PENDING),
                                   distinct=True)))
        if not actor.sees_everything and len(tenants) == 1:
            return redirect("permissions:tenant", pk=tenants[0].pk)
        for tenant in tenants:
            tenant.quota_rows = [dict(row, bar_pct=min(100, round(row["used_pct"] + row["reserved_pct"])))
                                 for row in quota_preview(tenant=tenant, amounts={}) if row["limit"] is not None]
        return render(request, "permissions/tenant_list.html", {
            "title": "Tenants", "tenants": tenants, "may_decide": policy.can(actor, "quota.decide")})


class TenantSwitchView(View):
    """The sidebar's tenant switcher: the session's active tenant, only one the user belongs to."""

    def post(self, request):
        tenant_id = request.POST.get("tenant", "")
        membership = (Membership.objects.filter(user=request.user, tenant_id=int(tenant_id)).select_related("tenant")
                      .first() if tenant_id.isdigit() else None)
        if membership is None:
            raise Http404("tenant: you are not a member of this tenant")
        request.session[policy.SESSION_TENANT_KEY] = membership.tenant_id
        messages.success(request, f"You are now working in {membership.tenant.name}.")
        # To the dashboard: the page they were on may belong to the tenant they left.
        return redirect("core:dashboard")


class _TenantMixin:
    def tenant(self, request, pk) -> tuple[Tenant, policy.Actor]:
        tenant = get_object_or_404(tenant_list(actor=request), pk=pk)
        return tenant, member_services.tenant_actor(request, tenant)

    def membership(self, request, pk, user_id) -> tuple[Tenant, Membership]:
        """The tenant's member `user_id` as the actor sees it (404 otherwise), once the actor may
        manage the tenant's members (403, audited, otherwise)."""
        tenant, actor = self.tenant(request, pk)
        membership = get_object_or_404(policy.visible(actor, Membership.objects.filter(tenant=tenant)), user_id=user_id)
        policy.check(actor, "membership.manage", tenant, request=request)
        return tenant, membership


class TenantDetailView(_TenantMixin, View):
    def get(self, request, pk):
        from .quotas import quota_usage

        tenant, actor = self.tenant(request, pk)
        policy.check(actor, "tenant.view", tenant, request=request)
        rows = quota_usage(tenant=tenant)
        for row in rows:
            limit = row["limit"]
            row["percent"] = min(100, round(100 * (row["used"] + row["reserved"]) / limit)) if limit else None
        manage = policy.can(actor, "membership.manage", tenant)
        members = policy.visible(actor, Membership.objects.filter(tenant=tenant)).select_related("user")
        return render(request, "permissions/tenant.html", {
            "title": tenant.name, "tenant": tenant, "quotas": rows, "members": members, "manage": manage,
            "add_form": MemberAddForm(), "role_choices": MemberRoleForm.base_fields["role"].choices,
            "pools": tenant.pools.select_related("cluster"),
            "may_request": policy.can(actor, "quota.request", tenant),
            "clusters": _clusters() if policy.can(actor, "tenant.manage", tenant) else None,
        })


def _clusters():
    # nodes.Cluster through the foreign key: the nodes app sits above this one
    return TenantPool._meta.get_field("cluster").related_model.objects.order_by("name")


class TenantPoolAssignView(_TenantMixin, View):
    """An operator gives the tenant a Proxmox pool on a cluster (created on Proxmox when missing)."""

    def post(self, request, pk):
        from .tenant_pools import tenant_pool_assign

        tenant, actor = self.tenant(request, pk)
        policy.check(actor, "tenant.manage", tenant, request=request)
        cluster_id = request.POST.get("cluster", "")
        cluster = _clusters().filter(pk=int(cluster_id)).first() if cluster_id.isdigit() else None
        if cluster is None:
            messages.error(request, "cluster: choose one of the clusters")
            return redirect("permissions:tenant", pk=pk)
        try:
            tenant_pool, created = tenant_pool_assign(tenant=tenant, cluster=cluster, pool=request.POST.get("pool", ""),
                                                      actor=actor, request=request)
        except ValidationError as exc:
            messages.error(request, _errors(exc))
            return redirect("permissions:tenant", pk=pk)
        messages.success(request, f"{tenant.name} has the pool {tenant_pool.pool!r} on {cluster} now"
                                  f"{' (created on Proxmox)' if created else ''}; its guests become theirs at the next sync.")
        return redirect("permissions:tenant", pk=pk)


class MemberAddView(_TenantMixin, View):
    def post(self, request, pk):
        tenant, actor = self.tenant(request, pk)
        policy.check(actor, "membership.manage", tenant, request=request)
        form = MemberAddForm(request.POST)
        if not form.is_valid():
            messages.error(request, "; ".join(f"{f}: {' '.join(e)}" for f, e in form.errors.items()))
            return redirect("permissions:tenant", pk=pk)
        try:
            member_services.member_add(tenant=tenant, username=form.cleaned_data["username"],
                                       role=form.cleaned_data["role"], by=request.user, request=request)
            messages.success(request, f"{form.cleaned_data['username']} added to {tenant}.")
        except ValidationError as exc:
            messages.error(request, _errors(exc))
        return redirect("permissions:tenant", pk=pk)


class MemberRoleView(_TenantMixin, View):
    def post(self, request, pk, user_id):
        _tenant, membership = self.membership(request, pk, user_id)
        form = MemberRoleForm(request.POST)
        try:
            if not form.is_valid():
                raise ValidationError({"role": form.errors.get("role", ["choose a role"])})
            membership = member_services.member_change(membership=membership, role=form.cleaned_data["role"],
                                                       by=request.user, request=request)
            messages.success(request, f"{membership.user} is now {membership.get_role_display().lower()}.")
        except ValidationError as exc:
            messages.error(request, _errors(exc))
        return redirect("permissions:tenant", pk=pk)


class MemberRemoveView(_TenantMixin, View):
    def post(self, request, pk, user_id):
        tenant, membership = self.membership(request, pk, user_id)
        try:
            member_services.member_remove(membership=membership, by=request.user, request=request)
            messages.success(request, f"{membership.user} removed from {tenant} (with their tokens of it).")
        except ValidationError as exc:
            messages.error(request, _errors(exc))
        return redirect("permissions:tenant", pk=pk)


class QuotaRequestListView(View):
    """Quota requests the user may see (waiting first); operators approve or decline them here."""

    def get(self, request):
        actor = policy.actor_for_request(request)
        requests = list(quota_request_list(actor=actor).order_by(
            Case(When(state=QuotaRequestState.PENDING, then=0), default=1), "-created")[:200])
        for item in requests:
            item.limits_text = describe_limits(item.limits)
        return render(request, "permissions/quotarequest_list.html", {
            "title": "Quota requests", "requests": requests, "may_decide": policy.can(actor, "quota.decide")})


class QuotaRequestCreateView(_TenantMixin, View):
    """A tenant admin asks for new limits of their tenant, saying why."""

    template_name = "permissions/quotarequest_form.html"

    def _render(self, request, tenant, form, status=200):
        from .quotas import quota_preview

        rows = quota_preview(tenant=tenant, amounts={})
        return render(request, self.template_name, {"title": f"New limits for {tenant.name}", "tenant": tenant,
                                                    "form": form, "rows": rows}, status=status)

    def get(self, request, pk):
        tenant, actor = self.tenant(request, pk)
        policy.check(actor, "quota.request", tenant, request=request)
        return self._render(request, tenant, QuotaRequestForm())

    def post(self, request, pk):
        tenant, actor = self.tenant(request, pk)
        policy.check(actor, "quota.request", tenant, request=request)  # 403 before the form is read
        form = QuotaRequestForm(request.POST)
        if not form.is_valid():
            return self._render(request, tenant, form, status=400)
        try:
            quota_request_create(tenant=tenant, actor=actor, limits=form.limits(), reason=form.cleaned_data["reason"],
                                 request=request)
        except ValidationError as exc:
            for key, msgs in exc.message_dict.items():
                name = QuotaRequestForm.FIELDS.get(key, key)
                form.add_error(name if name in form.fields else None, msgs)
            return self._render(request, tenant, form, status=400)
        messages.success(request, f"Asked for new limits of {tenant.name}: an operator will decide.")
        return redirect("permissions:quotarequest_list")


class QuotaRequestDecideView(View):
    """An operator approves (the limits are applied) or declines (with a reason) a waiting request."""

    def post(self, request, pk):
        actor = policy.actor_for_request(request)
        quota_request = get_object_or_404(quota_request_list(actor=actor), pk=pk)
        form = QuotaDecisionForm(request.POST)
        if not form.is_valid():
            messages.error(request, _errors(ValidationError(form.errors)))
            return redirect("permissions:quotarequest_list")
        approve = form.cleaned_data["decision"] == "approve"
        try:
            quota_request_decide(quota_request=quota_request, actor=actor, approve=approve,
                                 reason=form.cleaned_data["reason"], request=request)
        except ValidationError as exc:
            messages.error(request, _errors(exc))
            return redirect("permissions:quotarequest_list")
        messages.success(request, f"{quota_request} {'approved: its limits apply now' if approve else 'declined'}.")
        return redirect("permissions:quotarequest_list")
