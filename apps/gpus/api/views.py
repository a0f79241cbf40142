from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import status
from rest_framework.exceptions import NotFound, PermissionDenied, ValidationError
from rest_framework.response import Response

from apps.core.api import ScopedReadOnlyModelViewSet, operation_action
from apps.nodes.selectors import cluster_get

from .. import profiles, services
from ..attach import gpu_attach, gpu_detach
from ..filtersets import GpuDeviceFilterSet, PciMappingFilterSet
from ..selectors import gpu_allocation_list, gpu_device_list, gpu_profile_list, pci_mapping_list
from .serializers import (
    GpuAllocationSerializer,
    GpuAttachSerializer,
    GpuDeviceSerializer,
    GpuProfileSerializer,
    GpuProfileWriteSerializer,
    GpuRefreshSerializer,
    PciMappingSerializer,
)


def _cluster_param(request) -> dict:
    return {"cluster": request.query_params.get("cluster", request.data.get("cluster"))}


def _cluster_or_404(view, data):
    cluster = cluster_get(user=view.request.user, pk=data["cluster"])
    if cluster is None:
        raise NotFound("No cluster with this id.")
    return cluster


class GpuDeviceViewSet(ScopedReadOnlyModelViewSet):
    """GPUs (display-class PCI devices) per node with their vGPU (mdev) types; POST refresh/ (202)."""

    selector = gpu_device_list
    serializer_class = GpuDeviceSerializer
    filterset_class = GpuDeviceFilterSet
    ordering_fields = ["pci_id", "node__name", "iommugroup", "last_seen", "device_name"]
    ordering = ["node__name", "pci_id", "id"]

    @operation_action(detail=False, serializer=GpuRefreshSerializer, body=_cluster_param, target=_cluster_or_404,
                      audit="gpus.gpu_inventory_refresh", request=None, responses={202: None},
                      parameters=[OpenApiParameter("cluster", int, required=True)])
    def refresh(self, cluster, data):
        """Queue a GPU inventory refresh of `?cluster=<id>` (a worker makes the Proxmox calls)."""
        services.gpu_refresh_enqueue(cluster_id=cluster.pk, force=True, user=self.request.user)  # policy: gpu.refresh
        return {"detail": "GPU inventory refresh queued", "cluster": cluster.pk}


class PciMappingViewSet(ScopedReadOnlyModelViewSet):
    """Cluster PCI mappings with their entries and the GPUs they resolve to."""

    selector = pci_mapping_list
    serializer_class = PciMappingSerializer
    filterset_class = PciMappingFilterSet
    ordering_fields = ["mapping_id", "updated"]
    ordering = ["mapping_id", "id"]


class GpuProfileViewSet(ScopedReadOnlyModelViewSet):
    """GPU profiles: operators see and manage all (creating one writes its cluster PCI mapping on
    Proxmox); tenant users see the profiles offered to their tenant. `free` = free places per node."""

    selector = gpu_profile_list
    serializer_class = GpuProfileSerializer
    filterset_fields = ["cluster", "kind"]
    ordering_fields = ["name", "created"]
    ordering = ["cluster_id", "name", "id"]

    def _answer(self, profile, status_code=200):
        return Response(GpuProfileSerializer(profile, context={"request": self.request}).data, status=status_code)

    def _save(self, request, profile=None, partial=False):
        base = {}
        if profile is not None:
            base = {"cluster": profile.cluster_id, "name": profile.name, "kind": profile.kind,
                    "description": profile.description, "devices": list(profile.devices.values_list("pk", flat=True)),
                    "mapping_id": profile.mapping_id, "mdev_type": profile.mdev_type,
                    "device_nodes": profile.device_nodes, "gid": profile.gid, "mode": profile.mode,
                    "shares": profile.shares, "q35": profile.q35, "ovmf": profile.ovmf,
                    "tenants": list(profile.tenants.values_list("pk", flat=True))}
        body = GpuProfileWriteSerializer(data={**base, **request.data} if partial else request.data)
        body.is_valid(raise_exception=True)
        data = body.validated_data
        cluster = cluster_get(user=request.user, pk=data["cluster"])
        if cluster is None:  # a reference in the body: a field error, as for any unknown id there
            raise ValidationError({"cluster": ["no cluster with this id"]})
        if profile is not None and cluster.pk != profile.cluster_id:
            raise ValidationError({"cluster": ["a profile stays on its cluster"]})
        try:
            return profiles.gpu_profile_save(user=request.user, cluster=cluster, data=data, profile=profile,
                                             request=request._request)
        except DjangoPermissionDenied as exc:
            raise PermissionDenied(str(exc)) from exc

    @extend_schema(request=GpuProfileWriteSerializer, responses={201: GpuProfileSerializer})
    def create(self, request):
        return self._answer(self._save(request), status.HTTP_201_CREATED)

    @extend_schema(request=GpuProfileWriteSerializer, responses=GpuProfileSerializer)
    def update(self, request, pk=None):
        return self._answer(self._save(request, self.get_object()))

    @extend_schema(request=GpuProfileWriteSerializer, responses=GpuProfileSerializer)
    def partial_update(self, request, pk=None):
        return self._answer(self._save(request, self.get_object(), partial=True))

    @extend_schema(responses={204: None})
    def destroy(self, request, pk=None):
        try:
            profiles.gpu_profile_delete(user=request.user, profile=self.get_object(), request=request._request)
        except DjangoPermissionDenied as exc:
            raise PermissionDenied(str(exc)) from exc
        return Response(status=status.HTTP_204_NO_CONTENT)


def _guest_or_404(view, data):
    from apps.guests.selectors import guest_list

    guest = guest_list(user=view.request.user).select_related("node").filter(pk=data["guest"]).first()
    if guest is None:  # a reference in the body (not the URL): a field error naming it
        raise ValidationError({"guest": ["no guest with this id"]})
    return guest


class GpuAllocationViewSet(ScopedReadOnlyModelViewSet):
    """Who holds which card: operators every allocation, tenant users their tenant's.
    POST attach/ (202: operation gpu.attach) gives a stopped guest a GPU of a profile;
    POST {id}/detach/ (202: operation gpu.detach) takes it away."""

    selector = gpu_allocation_list
    serializer_class = GpuAllocationSerializer
    filterset_fields = ["cluster", "vmid", "profile", "state"]
    ordering_fields = ["vmid", "created"]
    ordering = ["device_id", "vmid", "id"]

    @operation_action(detail=False, serializer=GpuAttachSerializer, target=_guest_or_404, audit="gpus.gpu_attach",
                      audit_fields=("gpu_profile",))
    def attach(self, guest, data):
        """Give the stopped guest one GPU of the profile (placement on its node, tenant quota)."""
        return gpu_attach(guest=guest, user=self.request.user, profile_id=data["gpu_profile"])

    @operation_action(audit="gpus.gpu_detach", request=None)
    def detach(self, allocation, data):
        """Remove this GPU from its (stopped) guest; the card is free again when it succeeds."""
        return gpu_detach(allocation=allocation, user=self.request.user)
