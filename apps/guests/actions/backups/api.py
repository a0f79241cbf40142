"""/api/v1/guests/<pk>/backup|restore and /api/v1/backups/<pk>/: serializers, views, `api_urlpatterns`."""

from __future__ import annotations

from django.core.exceptions import PermissionDenied
from django.urls import path
from drf_spectacular.utils import extend_schema
from rest_framework import exceptions, serializers
from rest_framework.views import APIView

from apps.core import api as _core_api  # noqa: F401  (loads DRF generics before our schema decorators run)
from apps.core.models import AuditResult
from apps.core.services import audit_log
from apps.operations.api.serializers import OperationSerializer
from apps.proxmox import ProxmoxError
from apps.storage.selectors import storage_content_list

from ...models import Guest
from ...selectors import guest_backups
from ..backup_jobs.validation import COMPRESSIONS, MODES
from ..common import accepted, audit, guest_or_404
from .services import backup_delete, guest_backup, guest_restore


class BackupRequestSerializer(serializers.Serializer):
    storage = serializers.CharField(max_length=100, help_text="a storage holding `backup` content")
    mode = serializers.ChoiceField(choices=[m for m, _ in MODES], default="snapshot")
    compress = serializers.ChoiceField(choices=[c for c, _ in COMPRESSIONS], default="zstd")
    notes = serializers.CharField(required=False, allow_blank=True, max_length=1024, default="")
    protected = serializers.BooleanField(required=False, default=False)


class RestoreRequestSerializer(serializers.Serializer):
    backup = serializers.CharField(help_text="volid of one of the guest's backups, e.g. nfs-store:backup/vzdump-...")
    target = serializers.ChoiceField(choices=["new", "same"], default="new")
    storage = serializers.CharField(required=False, allow_blank=True, default="", help_text="disk storage (optional)")
    start = serializers.BooleanField(required=False, default=False)


class GuestBackupAPIView(APIView):
    """Back up the guest now (202 with the operation; its progress is vzdump's percentage)."""

    @extend_schema(request=BackupRequestSerializer, responses={202: OperationSerializer})
    def post(self, request, pk):
        guest = guest_or_404(request, pk)
        body = BackupRequestSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        try:
            operation = guest_backup(guest=guest, user=request.user, **body.validated_data)
        except PermissionDenied as exc:
            raise exceptions.PermissionDenied(str(exc))
        audit(request, "guests.guest_backup", guest, operation)
        return accepted(request, operation)


class GuestRestoreAPIView(APIView):
    """Restore one of the guest's backups over it (`same`) or as a new guest (`new`)."""

    @extend_schema(request=RestoreRequestSerializer, responses={202: OperationSerializer})
    def post(self, request, pk):
        guest = guest_or_404(request, pk)
        body = RestoreRequestSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        data = body.validated_data
        backup = guest_backups(user=request.user, guest=guest).filter(volid=data["backup"]).first()
        if backup is None:
            raise exceptions.ValidationError({"backup": [f"'{data['backup']}' is not a backup of {guest}"]})
        try:
            operation = guest_restore(guest=guest, user=request.user, backup=backup, target=data["target"],
                                      storage=data["storage"], start=data["start"])
        except PermissionDenied as exc:
            raise exceptions.PermissionDenied(str(exc))
        except ProxmoxError as exc:
            raise exceptions.APIException(f"Could not reserve a vmid. Proxmox said: {exc}")
        audit(request, "guests.guest_restore", guest, operation, volid=backup.volid)
        return accepted(request, operation)


class BackupDeleteAPIView(APIView):
    """Delete a backup volume (202 with the operation)."""

    @extend_schema(request=None, responses={202: OperationSerializer})
    def delete(self, request, pk):
        backup = storage_content_list(user=request.user).filter(pk=pk, content="backup").first()
        if backup is None:
            raise exceptions.NotFound("No such backup.")
        guest = Guest.objects.filter(cluster_id=backup.storage.cluster_id, vmid=backup.vmid).first()
        try:
            operation = backup_delete(backup=backup, user=request.user, guest=guest)
        except PermissionDenied as exc:
            raise exceptions.PermissionDenied(str(exc))
        audit_log(user=request.user, action="guests.backup_delete", target=guest or backup.volid,
                  result=AuditResult.ACCEPTED, request=request, detail={"operation": str(operation.pk)})
        return accepted(request, operation)


api_urlpatterns = [
    path("guests/<int:pk>/backup/", GuestBackupAPIView.as_view(), name="guest-backup"),
    path("guests/<int:pk>/restore/", GuestRestoreAPIView.as_view(), name="guest-restore"),
    path("backups/<int:pk>/", BackupDeleteAPIView.as_view(), name="backup-delete"),
]
