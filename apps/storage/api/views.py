from drf_spectacular.utils import extend_schema
from rest_framework import status
from rest_framework.decorators import action
from rest_framework.parsers import FormParser, MultiPartParser
from rest_framework.response import Response

from apps.core.api import ScopedReadOnlyModelViewSet, operation_action
from apps.core.api.lean import ValuesListMixin
from apps.core.limits import BoundedJSONParser

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

    @operation_action(serializer=StorageUploadSerializer, request={"multipart/form-data": StorageUploadSerializer},
                      audit="storage.storage_upload", parser_classes=[MultiPartParser, FormParser])
    def upload(self, storage, data):
        """Upload a file (multipart field `file`) into the storage as an operation."""
        return services.storage_upload(
            storage=storage, user=self.request.user, content=data["content"], uploaded_file=data["file"],
            filename=data["filename"], checksum=data["checksum"], checksum_algorithm=data["checksum_algorithm"])

    @operation_action(serializer=StorageDownloadUrlSerializer, audit="storage.storage_download_url",
                      url_path="download-url", parser_classes=[BoundedJSONParser, FormParser])
    def download_url(self, storage, data):
        """Let Proxmox download a URL into the storage, as an operation."""
        return services.storage_download_url(
            storage=storage, user=self.request.user, content=data["content"], url=data["url"],
            filename=data["filename"], checksum=data["checksum"], checksum_algorithm=data["checksum_algorithm"],
            verify_certificates=data["verify_certificates"])

    @extend_schema(request=None, responses={202: None})
    @action(detail=True, methods=["post"])
    def refresh(self, request, pk=None):
        """Queue a re-read of the storage's content list (one Proxmox call, in a worker)."""
        from ..tasks import storage_content_refresh

        storage = self.get_object()
        storage_content_refresh.delay(storage.pk)
        return Response({"detail": "content refresh queued"}, status=status.HTTP_202_ACCEPTED)


class StorageContentViewSet(ValuesListMixin, ScopedReadOnlyModelViewSet):
    """ISO images, CT templates, backups... filter by `storage`, `content`, `vmid`, `cluster`."""

    selector = storage_content_list
    serializer_class = StorageContentSerializer
    filterset_class = StorageContentFilterSet
    ordering_fields = ["volid", "size", "ctime", "content"]
    ordering = ["volid", "id"]
