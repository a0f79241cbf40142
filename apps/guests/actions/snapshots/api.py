"""/api/v1/guests/<pk>/snapshots/...: serializers, views and `api_urlpatterns`."""

from __future__ import annotations

from django.urls import path
from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.response import Response

from apps.core.api import operation_handler

from ...api.serializers import SnapshotSerializer
from ..base import GuestActionAPIView
from ..common import guest_or_404
from .services import guest_snapshot_create, guest_snapshot_delete, guest_snapshot_rollback


class SnapshotCreateSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=128, help_text="pve-configid: a letter, then letters, digits, _ or -; max 40")
    description = serializers.CharField(max_length=8192, required=False, allow_blank=True, default="")
    vmstate = serializers.BooleanField(required=False, default=False, help_text="save RAM (running VMs)")


class GuestSnapshotsAPIView(GuestActionAPIView):
    """GET: the guest's snapshots (as last read) and `current_parent` ("You are here" hangs under it).
    POST: take one (202 with the operation)."""

    serializer_class = SnapshotCreateSerializer

    @extend_schema(responses={200: inline_serializer("GuestSnapshotTree", fields={
        "count": serializers.IntegerField(), "current_parent": serializers.CharField(),
        "results": SnapshotSerializer(many=True)})})
    def get(self, request, pk):
        guest = guest_or_404(request, pk)
        rows = guest.snapshots.all().order_by("snaptime", "name")
        return Response({"count": len(rows), "current_parent": (guest.config or {}).get("parent", ""),
                         "results": SnapshotSerializer(rows, many=True).data})

    @operation_handler(serializer=SnapshotCreateSerializer, audit="guests.snapshot_create", audit_fields=("name",))
    def post(self, guest, data):
        return guest_snapshot_create(guest=guest, user=self.request.user, **data)


class GuestSnapshotAPIView(GuestActionAPIView):
    """DELETE: delete snapshot `name` (202 with the operation)."""

    @operation_handler(audit="guests.snapshot_delete", audit_fields=("name",))
    def delete(self, guest, data):
        return guest_snapshot_delete(guest=guest, user=self.request.user, name=self.kwargs["name"])


class GuestSnapshotRollbackAPIView(GuestActionAPIView):
    """POST: roll the guest back to snapshot `name` (202 with the operation)."""

    @operation_handler(audit="guests.snapshot_rollback", audit_fields=("name",))
    def post(self, guest, data):
        return guest_snapshot_rollback(guest=guest, user=self.request.user, name=self.kwargs["name"])


api_urlpatterns = [
    path("guests/<int:pk>/snapshots/", GuestSnapshotsAPIView.as_view(), name="guest-snapshots"),
    path("guests/<int:pk>/snapshots/<str:name>/", GuestSnapshotAPIView.as_view(), name="guest-snapshot"),
    path("guests/<int:pk>/snapshots/<str:name>/rollback/", GuestSnapshotRollbackAPIView.as_view(),
         name="guest-snapshot-rollback"),
]
