"""REST: /leases/ (the caller's guests' leases), POST /leases/ (operators set or clear a guest's
lease), POST /leases/<id>/extend/ (owners), DELETE /leases/<id>/ (operators: no expiry)."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework import mixins, status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import ValidationError
from rest_framework.response import Response

from apps.guests.selectors import guest_get

from .. import services
from ..selectors import lease_list
from .serializers import LeaseExtendSerializer, LeaseSerializer, LeaseSetSerializer


class LeaseViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, mixins.DestroyModelMixin,
                   viewsets.GenericViewSet):
    """Leases of the guests you see: when each ends, when it would be deleted, how far it may be extended."""

    serializer_class = LeaseSerializer

    def get_queryset(self):
        return lease_list(user=self.request)

    @extend_schema(request=LeaseSetSerializer, responses={200: LeaseSerializer, 204: None})
    def create(self, request):
        """Operators: set a guest's lease (replacing any), or remove it with `expires_at: null`."""
        checked = LeaseSetSerializer(data=request.data)
        checked.is_valid(raise_exception=True)
        guest = guest_get(user=request, pk=checked.validated_data["guest"])
        if guest is None:  # a reference in the body (not the URL): a field error naming it
            raise ValidationError({"guest": ["no guest with this id"]})
        lease = services.lease_set(guest=guest, user=request.user, expires_at=checked.validated_data["expires_at"],
                                   request=request)
        if lease is None:
            return Response(status=status.HTTP_204_NO_CONTENT)
        return Response(self.get_serializer(lease).data)

    def destroy(self, request, pk=None):
        """Operators: the guest no longer expires."""
        lease = self.get_object()
        services.lease_set(guest=lease.guest, user=request.user, expires_at=None, request=request)
        return Response(status=status.HTTP_204_NO_CONTENT)

    @extend_schema(request=LeaseExtendSerializer, responses={200: LeaseSerializer})
    @action(detail=True, methods=["post"])
    def extend(self, request, pk=None):
        """Owners: push the expiry back by `days` (400 on `days` says what is allowed)."""
        lease = self.get_object()
        checked = LeaseExtendSerializer(data=request.data)
        checked.is_valid(raise_exception=True)
        lease = services.lease_extend(lease=lease, user=request.user, days=checked.validated_data["days"],
                                      request=request)
        return Response(self.get_serializer(lease).data)
