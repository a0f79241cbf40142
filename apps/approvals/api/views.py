"""REST: /approvals/ (the operators' queue; a tenant's users see their tenant's requests) and the
decisions: POST approve (202 with the operation), decline (reason required), withdraw."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework import status, viewsets
from rest_framework.decorators import action
from rest_framework.response import Response

from apps.operations.api.serializers import OperationSerializer

from .. import services
from ..choices import ApprovalStatus
from ..selectors import approval_list
from .serializers import ApprovalRequestSerializer, DecisionSerializer


class ApprovalRequestViewSet(viewsets.ReadOnlyModelViewSet):
    """Requests above a tenant's approval size, waiting for an operator or decided. `?status=waiting`
    is the queue."""

    serializer_class = ApprovalRequestSerializer
    lookup_value_regex = "[0-9a-f-]{36}"

    def get_queryset(self):
        wanted = self.request.query_params.get("status")
        return approval_list(user=self.request, status=wanted if wanted in ApprovalStatus.values else None)

    def _reason(self, request) -> str:
        checked = DecisionSerializer(data=request.data)
        checked.is_valid(raise_exception=True)
        return checked.validated_data.get("reason", "")

    @extend_schema(request=DecisionSerializer, responses={202: OperationSerializer})
    @action(detail=True, methods=["post"])
    def approve(self, request, pk=None):
        operation = services.approval_approve(approval=self.get_object(), user=request.user,
                                              reason=self._reason(request), request=request)
        return Response(OperationSerializer(operation, context={"request": request}).data,
                        status=status.HTTP_202_ACCEPTED)

    @extend_schema(request=DecisionSerializer, responses={200: ApprovalRequestSerializer})
    @action(detail=True, methods=["post"])
    def decline(self, request, pk=None):
        approval = services.approval_decline(approval=self.get_object(), user=request.user,
                                             reason=self._reason(request), request=request)
        return Response(self.get_serializer(approval).data)

    @extend_schema(request=DecisionSerializer, responses={200: ApprovalRequestSerializer})
    @action(detail=True, methods=["post"])
    def withdraw(self, request, pk=None):
        approval = services.approval_withdraw(approval=self.get_object(), user=request.user,
                                              reason=self._reason(request), request=request)
        return Response(self.get_serializer(approval).data)
