from django.utils import timezone
from drf_spectacular.utils import OpenApiResponse, extend_schema, inline_serializer
from rest_framework import serializers, status
from rest_framework.decorators import action
from rest_framework.response import Response

from apps.core.api import ScopedReadOnlyModelViewSet, operation_action, operation_handler
from apps.core.api.lean import ValuesListMixin
from apps.core.models import AuditResult
from apps.core.services import audit_log
from apps.operations.api.serializers import OperationSerializer

from .. import services
from ..actions.clone.api import DeleteSerializer, delete_guest
from ..actions.common import ActionRefused
from ..choices import PowerAction
from ..filtersets import GuestFilterSet, SnapshotFilterSet
from ..models import uptime_seconds
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
    def act(self, guest, data):
        return services.guest_power(guest=guest, user=self.request.user, action=name, timeout=data.get("timeout"))

    act.__name__ = act.__qualname__ = name
    return operation_action(serializer=PowerActionSerializer, audit=f"guests.guest_{name}", url_path=name,
                            url_name=name, summary=f"{PowerAction(name).label} the guest (202 with the operation)")(act)


class GuestViewSet(ValuesListMixin, ScopedReadOnlyModelViewSet):
    """VMs and containers from the inventory; power actions answer 202 with the operation."""

    list_extra_columns = ("status", "booted_at")  # the list's `uptime` (Guest.uptime)

    selector = guest_list
    serializer_class = GuestSerializer
    filterset_class = GuestFilterSet
    ordering_fields = ["vmid", "name", "status", "type", "maxmem", "maxcpu", "pool"]
    ordering = ["vmid", "id"]
    action_refusals = (ActionRefused,)

    def get_queryset(self):
        queryset = super().get_queryset()
        return queryset.defer(None) if self.action == "retrieve" else queryset

    def get_serializer_class(self):
        return GuestDetailSerializer if self.action == "retrieve" else GuestSerializer

    def list_extra(self):
        now = timezone.now()
        return {"uptime": lambda row: uptime_seconds(row["status"], row["booted_at"], now)}

    start = _power_action(PowerAction.START)
    shutdown = _power_action(PowerAction.SHUTDOWN)
    stop = _power_action(PowerAction.STOP)
    reboot = _power_action(PowerAction.REBOOT)
    reset = _power_action(PowerAction.RESET)
    suspend = _power_action(PowerAction.SUSPEND)
    resume = _power_action(PowerAction.RESUME)

    destroy = operation_handler(
        serializer=DeleteSerializer, body=lambda request: request.query_params or request.data,
        audit="guests.guest_delete", audit_fields=("purge",),
        summary="Delete the guest (202 with the operation; ?purge=1 also drops HA/backup-job entries)")(delete_guest)

    @extend_schema(request=BulkPowerSerializer, responses={
        202: BulkResult, 409: OpenApiResponse(  # the same list (spectacular wraps lists in arrays for 2xx only)
            {"type": "array", "items": {"$ref": "#/components/schemas/GuestBulkResult"}},
            description="Nothing was queued: each guest's reason.")})
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
        queued = any(item["operation"] for item in out)
        return Response(out, status=status.HTTP_202_ACCEPTED if queued else status.HTTP_409_CONFLICT)


class SnapshotViewSet(ScopedReadOnlyModelViewSet):
    """Snapshots of guests (as last read from Proxmox); filter by `guest`."""

    selector = snapshot_list
    serializer_class = SnapshotSerializer
    filterset_class = SnapshotFilterSet
    ordering = ["guest", "snaptime", "id"]
