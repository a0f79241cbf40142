"""REST: quota requests (/api/v1/quota-requests/). A tenant admin asks for new limits with a reason
(the tenant from the token or the body); operators approve (limits applied) or decline with a
reason. Lists are scoped by the policy (a tenant's admins see theirs; members none)."""

from __future__ import annotations

from django.shortcuts import get_object_or_404
from drf_spectacular.utils import extend_schema
from rest_framework import mixins, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.response import Response

from .. import policy
from ..members import tenant_actor
from ..models import QuotaRequest
from ..quota_requests import (
    quota_request_create,
    quota_request_decide,
    quota_request_list,
)
from .quotas import QuotaSetSerializer
from .views import tenant_list


class QuotaRequestSerializer(serializers.ModelSerializer):
    tenant_name = serializers.CharField(source="tenant.name", read_only=True)
    requested_by = serializers.CharField(source="requested_by.username", read_only=True, default=None)
    decided_by = serializers.CharField(source="decided_by.username", read_only=True, default=None)
    limits = serializers.DictField(child=serializers.IntegerField(allow_null=True), read_only=True,
                                   help_text="Resource -> limit asked for (bytes for memory and disk; null: "
                                             "unlimited; GPUs as \"gpu:<profile id>\").")

    class Meta:
        model = QuotaRequest
        fields = ["id", "tenant", "tenant_name", "limits", "reason", "state", "requested_by", "created",
                  "decided_by", "decided_at", "decision_reason"]
        read_only_fields = fields


class QuotaRequestCreateSerializer(QuotaSetSerializer):
    tenant = serializers.IntegerField(required=False, min_value=1,
                                      help_text="The tenant (default: the token's or your active one).")
    reason = serializers.CharField(max_length=2000, help_text="Why the tenant needs it.")


class QuotaDecisionSerializer(serializers.Serializer):
    reason = serializers.CharField(max_length=2000, required=False, allow_blank=True, default="",
                                   help_text="Required to decline; shown to the tenant's admins.")


class QuotaRequestViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """Quota requests: a tenant admin creates one; operators approve or decline it."""

    serializer_class = QuotaRequestSerializer
    filterset_fields = ["state", "tenant"]
    ordering_fields = ["created", "state"]
    ordering = ["-created"]

    def get_queryset(self):
        return quota_request_list(actor=self.request)

    @extend_schema(request=QuotaRequestCreateSerializer, responses={201: QuotaRequestSerializer})
    def create(self, request, *args, **kwargs):
        body = QuotaRequestCreateSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        actor = policy.actor_for_request(request)
        tenant_id = body.validated_data.get("tenant") or actor.tenant_id
        if tenant_id is None:
            raise serializers.ValidationError({"tenant": ["name the tenant the request is for"]})
        tenant = get_object_or_404(tenant_list(actor=request), pk=tenant_id)
        created = quota_request_create(tenant=tenant, actor=tenant_actor(request, tenant), limits=body.limits(),
                                       reason=body.validated_data["reason"], request=request._request)
        return Response(QuotaRequestSerializer(created).data, status=status.HTTP_201_CREATED)

    def _decide(self, request, approve: bool):
        body = QuotaDecisionSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        decided = quota_request_decide(quota_request=self.get_object(), actor=request, approve=approve,
                                       reason=body.validated_data["reason"], request=request._request)
        return Response(QuotaRequestSerializer(decided).data)

    @extend_schema(request=QuotaDecisionSerializer, responses={200: QuotaRequestSerializer})
    @action(detail=True, methods=["post"])
    def approve(self, request, pk=None):
        """Apply the limits asked for (operators)."""
        return self._decide(request, approve=True)

    @extend_schema(request=QuotaDecisionSerializer, responses={200: QuotaRequestSerializer})
    @action(detail=True, methods=["post"])
    def decline(self, request, pk=None):
        """Refuse it, saying why (operators)."""
        return self._decide(request, approve=False)
