from drf_spectacular.utils import extend_schema
from rest_framework import status
from rest_framework.decorators import action
from rest_framework.parsers import FormParser, JSONParser, MultiPartParser
from rest_framework.response import Response

from apps.core.api import ScopedReadOnlyModelViewSet
from apps.core.models import AuditResult
from apps.core.services import audit_log
from apps.operations.api.serializers import OperationSerializer

from .. import services
from ..filtersets import StorageContentFilterSet, StorageFilterSet
from ..selectors import storage_content_list, storage_list
from .serializers import (
    StorageContentSerializer,
    StorageDownloadUrlSerializer,
    StorageSerializer,
    StorageUploadSerializer,
)


class StorageViewSet(ScopedReadOnlyModelViewSet):
    """Storages (shared once, local per node) with usage; upload / download-url / refresh (202)."""

    selector = storage_list
    serializer_class = StorageSerializer
    filterset_class = StorageFilterSet
    ordering_fields = ["storage", "type", "maxdisk", "disk", "status"]
    ordering = ["storage", "id"]

    def _accepted(self, request, storage, operation, action_name):
        audit_log(user=request.user, action=action_name, target=storage, result=AuditResult.ACCEPTED,
                  request=request, detail={"operation": str(operation.pk)})
        return Response(OperationSerializer(operation, context={"request": request}).data,
                        status=status.HTTP_202_ACCEPTED)

    @extend_schema(request={"multipart/form-data": StorageUploadSerializer}, responses={202: OperationSerializer})
    @action(detail=True, methods=["post"], parser_classes=[MultiPartParser, FormParser])
    def upload(self, request, pk=None):
        """Upload a file (multipart field `file`) into the storage as an operation."""
        storage = self.get_object()
        body = StorageUploadSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        data = body.validated_data
        operation = services.storage_upload(
            storage=storage, user=request.user, content=data["content"], uploaded_file=data["file"],
            filename=data["filename"], checksum=data["checksum"], checksum_algorithm=data["checksum_algorithm"])
        return self._accepted(request, storage, operation, "storage.storage_upload")

    @extend_schema(request=StorageDownloadUrlSerializer, responses={202: OperationSerializer})
    @action(detail=True, methods=["post"], url_path="download-url", parser_classes=[JSONParser, FormParser])
    def download_url(self, request, pk=None):
        """Let Proxmox download a URL into the storage, as an operation."""
        storage = self.get_object()
        body = StorageDownloadUrlSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        data = body.validated_data
        operation = services.storage_download_url(
            storage=storage, user=request.user, content=data["content"], url=data["url"],
            filename=data["filename"], checksum=data["checksum"], checksum_algorithm=data["checksum_algorithm"],
            verify_certificates=data["verify_certificates"])
        return self._accepted(request, storage, operation, "storage.storage_download_url")

    @extend_schema(request=None, responses={202: None})
    @action(detail=True, methods=["post"])
    def refresh(self, request, pk=None):
        """Queue a re-read of the storage's content list (one Proxmox call, in a worker)."""
        from ..tasks import storage_content_refresh

        storage = self.get_object()
        storage_content_refresh.delay(storage.pk)
        return Response({"detail": "content refresh queued"}, status=status.HTTP_202_ACCEPTED)


class StorageContentViewSet(ScopedReadOnlyModelViewSet):
    """ISO images, CT templates, backups... filter by `storage`, `content`, `vmid`, `cluster`."""

    selector = storage_content_list
    serializer_class = StorageContentSerializer
    filterset_class = StorageContentFilterSet
    ordering_fields = ["volid", "size", "ctime", "content"]
    ordering = ["volid", "id"]
