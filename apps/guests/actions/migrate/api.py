"""/api/v1/guests/<pk>/migrate-targets|migrate: serializers, views and `api_urlpatterns`."""

from __future__ import annotations

from django.core.exceptions import PermissionDenied
from django.urls import path
from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import exceptions, serializers, status
from rest_framework.response import Response
from rest_framework.views import APIView

from apps.core.api import operation_handler
from apps.proxmox import ProxmoxError, ProxmoxUnreachable

from ... import services
from ..base import GuestActionAPIView
from ..common import guest_or_404
from .plans import migrate_plan
from .services import guest_migrate


class MigrateRequestSerializer(serializers.Serializer):
    target = serializers.CharField(max_length=100, help_text="name of the node to migrate to")


_TargetSerializer = inline_serializer("MigrateTarget", many=True, fields={
    "node": serializers.CharField(), "allowed": serializers.BooleanField(), "online": serializers.BooleanField(),
    "reasons": serializers.ListField(child=serializers.CharField())})
_PlanSerializer = inline_serializer("MigratePlan", fields={
    "guest_id": serializers.IntegerField(), "source": serializers.CharField(), "running": serializers.BooleanField(),
    "mode": serializers.CharField(help_text="live, restart or offline"), "mode_text": serializers.CharField(),
    "targets": _TargetSerializer, "blockers": serializers.ListField(child=serializers.CharField()),
    "notes": serializers.ListField(child=serializers.CharField()), "local_disks": serializers.ListField(),
    "disk_bytes": serializers.IntegerField()})


class ProxmoxRefused(exceptions.APIException):
    status_code = status.HTTP_409_CONFLICT
    default_code = "proxmox_refused"


class ProxmoxDown(exceptions.APIException):
    status_code = status.HTTP_503_SERVICE_UNAVAILABLE
    default_code = "proxmox_unreachable"


class GuestMigrateTargetsAPIView(APIView):
    """Where the guest may migrate: Proxmox's precheck, each refused node with its reasons."""

    @extend_schema(responses={200: _PlanSerializer}, summary="Migration targets from Proxmox's precheck")
    def get(self, request, pk):
        guest = guest_or_404(request, pk)
        try:
            plan = migrate_plan(guest=guest, user=request.user)
        except PermissionDenied as exc:
            raise exceptions.PermissionDenied(str(exc))
        except ProxmoxUnreachable as exc:
            raise ProxmoxDown(services.explain_error("migrate", guest, exc))
        except ProxmoxError as exc:
            raise ProxmoxRefused(services.explain_error("migrate", guest, exc))
        return Response(plan.as_dict())


class GuestMigrateAPIView(GuestActionAPIView):
    """Migrate the guest to `target` (202 with the operation; follow it for the percentage)."""

    @operation_handler(serializer=MigrateRequestSerializer, audit="guests.guest_migrate", audit_fields=("target",),
                       summary="Migrate the guest (live for running VMs, restart mode for running containers)")
    def post(self, guest, data):
        return guest_migrate(guest=guest, user=self.request.user, target=data["target"])


api_urlpatterns = [
    path("guests/<int:pk>/migrate-targets/", GuestMigrateTargetsAPIView.as_view(), name="guest-migrate-targets"),
    path("guests/<int:pk>/migrate/", GuestMigrateAPIView.as_view(), name="guest-migrate"),
]
