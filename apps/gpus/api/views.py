from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import status
from rest_framework.decorators import action
from rest_framework.exceptions import NotFound
from rest_framework.response import Response

from apps.core.api import ScopedReadOnlyModelViewSet
from apps.core.models import AuditResult
from apps.core.services import audit_log
from apps.nodes.selectors import cluster_get

from .. import services
from ..filtersets import GpuDeviceFilterSet, PciMappingFilterSet
from ..selectors import gpu_device_list, pci_mapping_list
from .serializers import GpuDeviceSerializer, GpuRefreshSerializer, PciMappingSerializer


class GpuDeviceViewSet(ScopedReadOnlyModelViewSet):
    """GPUs (display-class PCI devices) per node with their vGPU (mdev) types; POST refresh/ (202)."""

    selector = gpu_device_list
    serializer_class = GpuDeviceSerializer
    filterset_class = GpuDeviceFilterSet
    ordering_fields = ["pci_id", "node__name", "iommugroup", "last_seen", "device_name"]
    ordering = ["node__name", "pci_id", "id"]

    @extend_schema(request=None, parameters=[OpenApiParameter("cluster", int, required=True)],
                   responses={202: None})
    @action(detail=False, methods=["post"])
    def refresh(self, request):
        """Queue a GPU inventory refresh of `?cluster=<id>` (a worker makes the Proxmox calls)."""
        body = GpuRefreshSerializer(data={"cluster": request.query_params.get("cluster", request.data.get("cluster"))})
        body.is_valid(raise_exception=True)
        cluster = cluster_get(user=request.user, pk=body.validated_data["cluster"])
        if cluster is None:
            raise NotFound("No cluster with this id.")
        services.gpu_refresh_enqueue(cluster_id=cluster.pk, force=True)
        audit_log(user=request.user, action="gpus.gpu_inventory_refresh", target=cluster,
                  result=AuditResult.ACCEPTED, request=request)
        return Response({"detail": "GPU inventory refresh queued", "cluster": cluster.pk},
                        status=status.HTTP_202_ACCEPTED)


class PciMappingViewSet(ScopedReadOnlyModelViewSet):
    """Cluster PCI mappings with their entries and the GPUs they resolve to."""

    selector = pci_mapping_list
    serializer_class = PciMappingSerializer
    filterset_class = PciMappingFilterSet
    ordering_fields = ["mapping_id", "updated"]
    ordering = ["mapping_id", "id"]
