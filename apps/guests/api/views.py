from django.core.exceptions import PermissionDenied
from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import exceptions, serializers, status
from rest_framework.decorators import action
from rest_framework.response import Response

from apps.core.api import ScopedReadOnlyModelViewSet
from apps.core.models import AuditResult
from apps.core.services import audit_log
from apps.operations.api.serializers import OperationSerializer

from .. import services
from ..choices import PowerAction
from ..filtersets import GuestFilterSet, SnapshotFilterSet
from ..selectors import guest_list, snapshot_list
from .serializers import (
    BulkPowerSerializer,
    GuestDetailSerializer,
    GuestSerializer,
    PowerActionSerializer,
    SnapshotSerializer,
)

BulkResult = inline_serializer("GuestBulkResult", many=True, fields={
    "guest": serializers.IntegerField(), "operation": OperationSerializer(allow_null=True),
    "error": serializers.CharField()})


def _power_action(name: str):
    @extend_schema(request=PowerActionSerializer, responses={202: OperationSerializer},
                   summary=f"{PowerAction(name).label} the guest (202 with the operation)")
    def act(self, request, pk=None):
        guest = self.get_object()
        body = PowerActionSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        try:
            operation = services.guest_power(guest=guest, user=request.user, action=name,
                                             timeout=body.validated_data.get("timeout"))
        except PermissionDenied as exc:
            audit_log(user=request.user, action=f"guests.guest_{name}", target=guest, result=AuditResult.DENIED,
                      request=request)
            raise exceptions.PermissionDenied(str(exc))
        audit_log(user=request.user, action=f"guests.guest_{name}", target=guest, result=AuditResult.ACCEPTED,
                  request=request, detail={"operation": str(operation.pk)})
        return Response(OperationSerializer(operation, context={"request": request}).data,
                        status=status.HTTP_202_ACCEPTED)

    act.__name__ = name
    return action(detail=True, methods=["post"], url_path=name, url_name=name)(act)


class GuestViewSet(ScopedReadOnlyModelViewSet):
    """VMs and containers from the inventory; power actions answer 202 with the operation."""

    selector = guest_list
    serializer_class = GuestSerializer
    filterset_class = GuestFilterSet
    ordering_fields = ["vmid", "name", "status", "type", "maxmem", "maxcpu", "pool"]
    ordering = ["vmid", "id"]

    def get_queryset(self):
        queryset = super().get_queryset()
        return queryset.defer(None) if self.action == "retrieve" else queryset

    def get_serializer_class(self):
        return GuestDetailSerializer if self.action == "retrieve" else GuestSerializer

    start = _power_action(PowerAction.START)
    shutdown = _power_action(PowerAction.SHUTDOWN)
    stop = _power_action(PowerAction.STOP)
    reboot = _power_action(PowerAction.REBOOT)
    reset = _power_action(PowerAction.RESET)
    suspend = _power_action(PowerAction.SUSPEND)
    resume = _power_action(PowerAction.RESUME)

    @extend_schema(summary="Delete the guest (202 with the operation; ?purge=1 also drops HA/backup-job entries)",
                   responses={202: OperationSerializer})
    def destroy(self, request, pk=None):
        from ..actions.clone import delete_response  # the delete lives with clone/template

        return delete_response(request, self.get_object(), request.query_params or request.data)

    @extend_schema(request=BulkPowerSerializer, responses={202: BulkResult})
    @action(detail=False, methods=["post"])
    def bulk(self, request):
        """One action on many guests: each gets its own operation, or the reason it got none.
        Ids the caller may not see are reported as not found."""
        body = BulkPowerSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        data = body.validated_data
        found = {g.pk: g for g in self.get_queryset().filter(pk__in=data["ids"])}
        results = services.guest_bulk_power(guests=[found[i] for i in data["ids"] if i in found], user=request.user,
                                            action=data["action"], timeout=data.get("timeout"))
        by_id = {r["guest"].pk: r for r in results}
        out = []
        for pk in data["ids"]:
            r = by_id.get(pk)
            if r is None:
                out.append({"guest": pk, "operation": None, "error": "not found"})
                continue
            audit_log(user=request.user, action=f"guests.guest_{data['action']}", target=r["guest"],
                      result=AuditResult.ACCEPTED if r["operation"] else AuditResult.FAILURE, request=request)
            out.append({"guest": pk, "error": r["error"], "operation": OperationSerializer(
                r["operation"], context={"request": request}).data if r["operation"] else None})
        return Response(out, status=status.HTTP_202_ACCEPTED)


class SnapshotViewSet(ScopedReadOnlyModelViewSet):
    """Snapshots of guests (as last read from Proxmox); filter by `guest`."""

    selector = snapshot_list
    serializer_class = SnapshotSerializer
    filterset_class = SnapshotFilterSet
    ordering = ["guest", "snaptime", "id"]
