from django.core.exceptions import PermissionDenied
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import exceptions, status
from rest_framework.decorators import action
from rest_framework.response import Response

from apps.core.api import ScopedReadOnlyModelViewSet
from apps.core.api.lean import ValuesListMixin
from apps.core.models import AuditResult
from apps.core.services import audit_log
from apps.proxmox import ProxmoxError

from ..filtersets import OperationFilterSet
from ..models import Operation
from ..selectors import operation_events, operation_list
from ..services import OperationNotCancellable, operation_cancel
from .serializers import OperationEventSerializer, OperationSerializer


class Conflict(exceptions.APIException):
    status_code = status.HTTP_409_CONFLICT
    default_code = "conflict"


class ProxmoxFailed(exceptions.APIException):
    status_code = status.HTTP_502_BAD_GATEWAY
    default_code = "proxmox_error"


class OperationViewSet(ValuesListMixin, ScopedReadOnlyModelViewSet):
    """Operations the caller may see; events by sequence number; cancel (202)."""

    selector = operation_list
    serializer_class = OperationSerializer
    filterset_class = OperationFilterSet
    ordering_fields = ["created", "finished", "status", "kind"]
    ordering = ["-created"]

    def list_extra(self):
        websocket = OperationSerializer().get_websocket
        return {"websocket": lambda row: websocket(Operation(pk=row["pk"]))}

    @extend_schema(
        parameters=[OpenApiParameter("after", int, description="Only events with seq greater than this.")],
        responses=OperationEventSerializer(many=True),
    )
    @action(detail=True, methods=["get"])
    def events(self, request, pk=None):
        """Events in order; pass the last seq you saw as ?after= to get only newer ones."""
        operation = self.get_object()
        raw = request.query_params.get("after", "0")
        try:
            after = int(raw)
            if after < 0:
                raise ValueError
        except ValueError:
            raise exceptions.ValidationError({"after": [f"must be a non-negative integer, got '{raw}'"]})
        queryset = operation_events(operation=operation, after=after)
        page = self.paginate_queryset(queryset)
        return self.get_paginated_response(OperationEventSerializer(page, many=True).data)

    @extend_schema(request=None, responses={202: OperationSerializer})
    @action(detail=True, methods=["post"])
    def cancel(self, request, pk=None):
        """Stop the Proxmox task and mark the operation cancelled; 409 once it has finished."""
        operation = self.get_object()
        try:
            operation_cancel(operation=operation, user=request.user)
        except PermissionDenied as exc:
            audit_log(user=request.user, action="operation.cancel", target=operation,
                      result=AuditResult.DENIED, request=request)
            raise exceptions.PermissionDenied(str(exc))
        except OperationNotCancellable as exc:
            raise Conflict(str(exc))
        except ProxmoxError as exc:
            audit_log(user=request.user, action="operation.cancel", target=operation,
                      result=AuditResult.FAILURE, request=request, detail={"error": str(exc)})
            raise ProxmoxFailed(f"Proxmox refused to stop the task: {exc}")
        audit_log(user=request.user, action="operation.cancel", target=operation,
                  result=AuditResult.SUCCESS, request=request)
        return Response(self.get_serializer(operation).data, status=status.HTTP_202_ACCEPTED)
