"""/api/v1/guests/<pk>/clone|template|delete: serializers, views and `api_urlpatterns`."""

from __future__ import annotations

from django.urls import path
from rest_framework import serializers

from apps.core.api import operation_handler  # first: DRF's generics import our pagination from it
from apps.approvals.api.mixins import ApprovalAwareMixin

from ...models import Guest
from ..base import GuestActionAPIView
from .services import guest_clone, guest_delete, guest_template


class CloneSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=128, required=False, allow_blank=True, default="")
    target = serializers.CharField(max_length=63, required=False, allow_blank=True, default="", help_text="node (default: same)")
    storage = serializers.CharField(max_length=100, required=False, allow_blank=True, default="")
    pool = serializers.CharField(max_length=64, required=False, allow_blank=True, default="")
    full = serializers.BooleanField(required=False, allow_null=True, default=None,
                                    help_text="default: linked for templates, full otherwise")
    newid = serializers.IntegerField(min_value=100, max_value=999999999, required=False, allow_null=True, default=None)
    description = serializers.CharField(max_length=8192, required=False, allow_blank=True, default="")


class DeleteSerializer(serializers.Serializer):
    purge = serializers.BooleanField(required=False, default=False)
    destroy_unreferenced_disks = serializers.BooleanField(required=False, default=False)


class GuestCloneAPIView(ApprovalAwareMixin, GuestActionAPIView):
    """POST: clone the guest (202 with the operation; the result names the new vmid). Above the
    tenant's approval size: 202 with the approval request that waits for an operator."""

    serializer_class = CloneSerializer

    @operation_handler(serializer=CloneSerializer, audit="guests.guest_clone")
    def post(self, guest, data):
        return guest_clone(guest=guest, user=self.request.user, **data)


class GuestTemplateAPIView(GuestActionAPIView):
    """POST: convert the guest to a template (202 with the operation)."""

    @operation_handler(audit="guests.guest_template")
    def post(self, guest, data):
        return guest_template(guest=guest, user=self.request.user)


def delete_guest(view, guest: Guest, data):
    return guest_delete(guest=guest, user=view.request.user, **data)


class GuestDeleteAPIView(GuestActionAPIView):
    """POST: delete the guest (202 with the operation; 409 with the reason while protected, running,
    or HA-managed without purge). Same as DELETE /api/v1/guests/<id>/?purge=1."""

    serializer_class = DeleteSerializer
    post = operation_handler(serializer=DeleteSerializer, audit="guests.guest_delete", audit_fields=("purge",))(
        delete_guest)


api_urlpatterns = [
    path("guests/<int:pk>/clone/", GuestCloneAPIView.as_view(), name="guest-clone"),
    path("guests/<int:pk>/template/", GuestTemplateAPIView.as_view(), name="guest-template"),
    path("guests/<int:pk>/delete/", GuestDeleteAPIView.as_view(), name="guest-delete"),
]
