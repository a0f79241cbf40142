"""/api/v1/guests/<pk>/clone|template|delete: serializers, views and `api_urlpatterns`."""

from __future__ import annotations

from django.urls import path
from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.permissions import IsAuthenticated
from rest_framework.views import APIView

from apps.core import api as _core_api  # noqa: F401  (loads DRF generics before our schema decorators run)
from apps.core.models import AuditResult
from apps.operations.api.serializers import OperationSerializer

from ...models import Guest
from ..common import ActionRefused, accepted, audit, guest_or_404, refused
from .services import guest_clone, guest_delete, guest_template


class CloneSerializer(serializers.Serializer):
    name = serializers.CharField(required=False, allow_blank=True, default="")
    target = serializers.CharField(required=False, allow_blank=True, default="", help_text="node (default: same)")
    storage = serializers.CharField(required=False, allow_blank=True, default="")
    pool = serializers.CharField(required=False, allow_blank=True, default="")
    full = serializers.BooleanField(required=False, allow_null=True, default=None,
                                    help_text="default: linked for templates, full otherwise")
    newid = serializers.IntegerField(required=False, allow_null=True, default=None)
    description = serializers.CharField(required=False, allow_blank=True, default="")


class DeleteSerializer(serializers.Serializer):
    purge = serializers.BooleanField(required=False, default=False)
    destroy_unreferenced_disks = serializers.BooleanField(required=False, default=False)


class GuestCloneAPIView(APIView):
    """POST: clone the guest (202 with the operation; the result names the new vmid)."""

    permission_classes = [IsAuthenticated]
    serializer_class = CloneSerializer

    @extend_schema(request=CloneSerializer, responses={202: OperationSerializer})
    def post(self, request, pk):
        guest = guest_or_404(request, pk)
        body = CloneSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        operation = guest_clone(guest=guest, user=request.user, **body.validated_data)
        audit(request, "guests.guest_clone", guest, operation)
        return accepted(request, operation)


class GuestTemplateAPIView(APIView):
    """POST: convert the guest to a template (202 with the operation)."""

    permission_classes = [IsAuthenticated]

    @extend_schema(request=None, responses={202: OperationSerializer})
    def post(self, request, pk):
        guest = guest_or_404(request, pk)
        operation = guest_template(guest=guest, user=request.user)
        audit(request, "guests.guest_template", guest, operation)
        return accepted(request, operation)


def delete_response(request, guest: Guest, data) -> object:
    body = DeleteSerializer(data=data)
    body.is_valid(raise_exception=True)
    try:
        operation = guest_delete(guest=guest, user=request.user, **body.validated_data)
    except ActionRefused as exc:
        audit(request, "guests.guest_delete", guest, result=AuditResult.FAILURE, error=exc.message)
        return refused(exc)
    audit(request, "guests.guest_delete", guest, operation, purge=body.validated_data["purge"])
    return accepted(request, operation)


class GuestDeleteAPIView(APIView):
    """POST: delete the guest (202 with the operation; 409 with the reason while protected, running,
    or HA-managed without purge). Same as DELETE /api/v1/guests/<id>/?purge=1."""

    permission_classes = [IsAuthenticated]
    serializer_class = DeleteSerializer

    @extend_schema(request=DeleteSerializer, responses={202: OperationSerializer})
    def post(self, request, pk):
        return delete_response(request, guest_or_404(request, pk), request.data)


api_urlpatterns = [
    path("guests/<int:pk>/clone/", GuestCloneAPIView.as_view(), name="guest-clone"),
    path("guests/<int:pk>/template/", GuestTemplateAPIView.as_view(), name="guest-template"),
    path("guests/<int:pk>/delete/", GuestDeleteAPIView.as_view(), name="guest-delete"),
]
