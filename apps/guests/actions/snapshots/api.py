"""/api/v1/guests/<pk>/snapshots/...: serializers, views and `api_urlpatterns`."""

from __future__ import annotations

from django.urls import path
from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.permissions import IsAuthenticated
from rest_framework.response import Response
from rest_framework.views import APIView

from apps.core import api as _core_api  # noqa: F401  (loads DRF generics before our schema decorators run)
from apps.operations.api.serializers import OperationSerializer

from ...api.serializers import SnapshotSerializer
from ..common import accepted, audit, guest_or_404
from .services import guest_snapshot_create, guest_snapshot_delete, guest_snapshot_rollback


class SnapshotCreateSerializer(serializers.Serializer):
    name = serializers.CharField(help_text="pve-configid: a letter, then letters, digits, _ or -; max 40")
    description = serializers.CharField(required=False, allow_blank=True, default="")
    vmstate = serializers.BooleanField(required=False, default=False, help_text="save RAM (running VMs)")


class GuestSnapshotsAPIView(APIView):
    """GET: the guest's snapshots (as last read) and `current_parent` ("You are here" hangs under it).
    POST: take one (202 with the operation)."""

    permission_classes = [IsAuthenticated]
    serializer_class = SnapshotCreateSerializer

    @extend_schema(responses={200: inline_serializer("GuestSnapshotTree", fields={
        "count": serializers.IntegerField(), "current_parent": serializers.CharField(),
        "results": SnapshotSerializer(many=True)})})
    def get(self, request, pk):
        guest = guest_or_404(request, pk)
        rows = guest.snapshots.all().order_by("snaptime", "name")
        return Response({"count": len(rows), "current_parent": (guest.config or {}).get("parent", ""),
                         "results": SnapshotSerializer(rows, many=True).data})

    @extend_schema(request=SnapshotCreateSerializer, responses={202: OperationSerializer})
    def post(self, request, pk):
        guest = guest_or_404(request, pk)
        body = SnapshotCreateSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        operation = guest_snapshot_create(guest=guest, user=request.user, **body.validated_data)
        audit(request, "guests.snapshot_create", guest, operation, name=body.validated_data["name"])
        return accepted(request, operation)


class GuestSnapshotAPIView(APIView):
    """DELETE: delete snapshot `name` (202 with the operation)."""

    permission_classes = [IsAuthenticated]

    @extend_schema(request=None, responses={202: OperationSerializer})
    def delete(self, request, pk, name):
        guest = guest_or_404(request, pk)
        operation = guest_snapshot_delete(guest=guest, user=request.user, name=name)
        audit(request, "guests.snapshot_delete", guest, operation, name=name)
        return accepted(request, operation)


class GuestSnapshotRollbackAPIView(APIView):
    """POST: roll the guest back to snapshot `name` (202 with the operation)."""

    permission_classes = [IsAuthenticated]

    @extend_schema(request=None, responses={202: OperationSerializer})
    def post(self, request, pk, name):
        guest = guest_or_404(request, pk)
        operation = guest_snapshot_rollback(guest=guest, user=request.user, name=name)
        audit(request, "guests.snapshot_rollback", guest, operation, name=name)
        return accepted(request, operation)


api_urlpatterns = [
    path("guests/<int:pk>/snapshots/", GuestSnapshotsAPIView.as_view(), name="guest-snapshots"),
    path("guests/<int:pk>/snapshots/<str:name>/", GuestSnapshotAPIView.as_view(), name="guest-snapshot"),
    path("guests/<int:pk>/snapshots/<str:name>/rollback/", GuestSnapshotRollbackAPIView.as_view(),
         name="guest-snapshot-rollback"),
]
