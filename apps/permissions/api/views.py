"""REST: API tokens (/tokens/), tenants (/tenants/), a tenant's quota usage and members.

What the caller may see comes from the policy (404 outside it); what they may do too (403,
audited by policy.check). The secret of a token is in the create answer only."""

from __future__ import annotations

from django.db.models import Q
from django.shortcuts import get_object_or_404
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import mixins, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.permissions import IsAuthenticated
from rest_framework.response import Response

from apps.core.api.schema import ERROR_RESPONSES

from .. import members as member_services
from .. import policy
from ..drf import ActionPermission, ReadOnlyActorPermission
from ..models import ApiToken, Membership, Tenant, TenantPool
from ..tokens import issue_token, may_revoke, revoke_token
from .quotas import QuotaSetSerializer, quota_update
from .serializers import (
    ApiTokenCreatedSerializer,
    ApiTokenCreateSerializer,
    ApiTokenSerializer,
    MemberAddSerializer,
    MemberSerializer,
    QuotaUsageSerializer,
    TenantPoolSerializer,
    TenantSerializer,
)


def token_list(*, actor):
    """One's own tokens, and those the policy shows (a tenant admin: the tenant's; operators: all)."""
    actor = policy.as_actor(actor)
    if not actor.is_authenticated:
        return ApiToken.objects.none()
    shown = policy.visible(actor, ApiToken.objects.all()).values("pk")
    return ApiToken.objects.filter(Q(pk__in=shown) | Q(user_id=actor.user.pk)).select_related("user", "tenant")


def tenant_list(*, actor):
    """The policy's tenants; a session user also every tenant they belong to (they switch between
    them), a token only its own."""
    actor = policy.as_actor(actor)
    if not actor.is_authenticated:
        return Tenant.objects.none()
    queryset = policy.visible(actor, Tenant.objects.all())
    if actor.token is None and not actor.sees_everything:
        queryset = Tenant.objects.filter(Q(pk__in=queryset.values("pk")) | Q(memberships__user_id=actor.user.pk))
    return queryset.distinct().prefetch_related("pools__cluster")


class ApiTokenViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, mixins.CreateModelMixin,
                      mixins.DestroyModelMixin, viewsets.GenericViewSet):
    """Your API tokens (a tenant admin also sees the tenant's); create one (its secret is in this
    answer only); DELETE revokes it at once."""

    serializer_class = ApiTokenSerializer
    lookup_field = "token_key"
    lookup_url_kwarg = "id"
    ordering_fields = ["created", "expiry", "last_used", "name"]
    ordering = ["-created"]
    filterset_fields = ["read_only", "tenant"]

    def get_queryset(self):
        return token_list(actor=self.request)

    @extend_schema(request=ApiTokenCreateSerializer, responses={201: ApiTokenCreatedSerializer})
    def create(self, request, *args, **kwargs):
        actor = policy.actor_for_request(request)
        policy.check(actor, "token.create", request=request)
        body = ApiTokenCreateSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        data = body.validated_data
        tenant = data.get("tenant")
        if actor.token is not None and actor.token.tenant_id is not None and tenant is not None \
                and tenant.pk != actor.token.tenant_id:
            return Response({"detail": "Invalid input.",
                             "errors": {"tenant": ["a token may only create tokens of its own tenant"]}},
                            status=status.HTTP_400_BAD_REQUEST)
        token, secret = issue_token(request.user, name=data["name"], days=data["expiry_days"],
                                    tenant=tenant, default_tenant=actor.tenant, read_only=data["read_only"],
                                    request=request._request)
        token.token = secret
        return Response(ApiTokenCreatedSerializer(token).data, status=status.HTTP_201_CREATED)

    @extend_schema(responses={204: None})
    def destroy(self, request, *args, **kwargs):
        token = self.get_object()
        actor = policy.actor_for_request(request)
        if not may_revoke(actor, token):
            policy.check(actor, "token.manage", token, request=request)  # raises Denied (403), audited
        revoke_token(token, by=request.user, request=request._request)
        return Response(status=status.HTTP_204_NO_CONTENT)


class TenantPoolAssignSerializer(serializers.Serializer):
    cluster = serializers.PrimaryKeyRelatedField(queryset=TenantPool._meta.get_field("cluster").related_model.objects,
                                                 help_text="Id of the cluster.")
    pool = serializers.CharField(max_length=64, help_text="The Proxmox pool id (created on Proxmox when missing).")


class TenantViewSet(viewsets.ModelViewSet):
    """Tenants: operators see and manage all; others see the tenants they belong to (read only)."""

    serializer_class = TenantSerializer
    permission_classes = [IsAuthenticated, ReadOnlyActorPermission, ActionPermission.for_action("tenant.manage")]
    ordering_fields = ["name", "created"]
    ordering = ["name"]
    filterset_fields = ["slug"]

    def get_queryset(self):
        return tenant_list(actor=self.request)

    def perform_create(self, serializer):
        from apps.core.models import AuditResult
        from apps.core.services import audit_log

        tenant = serializer.save()
        audit_log(user=self.request.user, action="tenant.create", target=tenant, result=AuditResult.SUCCESS,
                  request=self.request._request, detail={"slug": tenant.slug})

    def perform_update(self, serializer):
        from apps.core.models import AuditResult
        from apps.core.services import audit_log

        tenant = serializer.save()
        audit_log(user=self.request.user, action="tenant.update", target=tenant, result=AuditResult.SUCCESS,
                  request=self.request._request, detail={"fields": sorted(serializer.validated_data)})

    def perform_destroy(self, instance):
        from apps.core.models import AuditResult
        from apps.core.services import audit_log

        audit_log(user=self.request.user, action="tenant.delete", target=instance, result=AuditResult.SUCCESS,
                  request=self.request._request, detail={"slug": instance.slug})
        instance.delete()

    @extend_schema(methods=["GET"], responses={200: QuotaUsageSerializer(many=True)})
    @extend_schema(methods=["PUT", "PATCH"], request=QuotaSetSerializer,
                   responses={200: QuotaUsageSerializer(many=True)})
    @action(detail=True, methods=["get", "put", "patch"], pagination_class=None, filter_backends=[])
    def quota(self, request, pk=None):
        """GET: each resource's limit (None: unlimited), what is used and what operations in flight
        reserve. PUT/PATCH (operators): set the named limits (null: unlimited; left out: unchanged)."""
        from ..quotas import quota_usage

        tenant = self.get_object()
        if request.method in ("PUT", "PATCH"):
            return quota_update(request, tenant, member_services.tenant_actor(request, tenant))
        policy.check(member_services.tenant_actor(request, tenant), "quota.view", tenant, request=request)
        return Response(QuotaUsageSerializer(quota_usage(tenant=tenant), many=True).data)

    @extend_schema(request=TenantPoolAssignSerializer, responses={201: TenantPoolSerializer})
    @action(detail=True, methods=["post"], url_path="pools", pagination_class=None, filter_backends=[])
    def pools(self, request, pk=None):
        """Give the tenant a Proxmox pool on a cluster (operators): created on Proxmox when missing;
        one pool per cluster; its guests become the tenant's at the next sync."""
        from ..tenant_pools import tenant_pool_assign

        tenant = self.get_object()
        body = TenantPoolAssignSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        tenant_pool, created = tenant_pool_assign(tenant=tenant, cluster=body.validated_data["cluster"],
                                                  pool=body.validated_data["pool"], actor=request,
                                                  request=request._request)
        return Response({**TenantPoolSerializer(tenant_pool).data, "created_on_proxmox": created},
                        status=status.HTTP_201_CREATED)


class TenantMemberViewSet(viewsets.GenericViewSet):
    """A tenant's members: its admins (and operators) add existing users, change roles, remove them;
    a member sees only their own membership."""

    serializer_class = MemberSerializer
    lookup_url_kwarg = "user_id"
    pagination_class = None
    filter_backends = []

    def tenant(self) -> Tenant:
        if not hasattr(self, "_tenant"):
            self._tenant = get_object_or_404(tenant_list(actor=self.request), pk=self.kwargs["tenant_id"])
            self._actor = member_services.tenant_actor(self.request, self._tenant)
        return self._tenant

    def get_queryset(self):
        tenant = self.tenant()
        return policy.visible(self._actor, Membership.objects.filter(tenant=tenant)).select_related("user")

    def get_object(self):
        return get_object_or_404(self.get_queryset(), user_id=self.kwargs["user_id"])

    def _may_manage(self):
        policy.check(self._actor, "membership.manage", self.tenant(), request=self.request)

    def list(self, request, tenant_id=None):
        return Response(MemberSerializer(self.get_queryset(), many=True).data)

    @extend_schema(request=MemberAddSerializer, responses={201: MemberSerializer})
    def create(self, request, tenant_id=None):
        tenant = self.tenant()
        self._may_manage()
        body = MemberAddSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        membership = member_services.member_add(tenant=tenant, username=body.validated_data["username"],
                                                role=body.validated_data["role"], by=request.user,
                                                request=request._request)
        return Response(MemberSerializer(membership).data, status=status.HTTP_201_CREATED)

    def retrieve(self, request, tenant_id=None, user_id=None):
        return Response(MemberSerializer(self.get_object()).data)

    @extend_schema(request=MemberSerializer, responses={200: MemberSerializer})
    def partial_update(self, request, tenant_id=None, user_id=None):
        membership = self.get_object()
        self._may_manage()
        body = MemberSerializer(membership, data=request.data, partial=True)
        body.is_valid(raise_exception=True)
        if "role" in body.validated_data:
            membership = member_services.member_change(membership=membership, role=body.validated_data["role"],
                                                       by=request.user, request=request._request)
        return Response(MemberSerializer(membership).data)

    @extend_schema(responses={204: OpenApiResponse(description="Removed (their tokens of this tenant too)."),
                              400: ERROR_RESPONSES[400]})
    def destroy(self, request, tenant_id=None, user_id=None):
        membership = self.get_object()
        self._may_manage()
        member_services.member_remove(membership=membership, by=request.user, request=request._request)
        return Response(status=status.HTTP_204_NO_CONTENT)
