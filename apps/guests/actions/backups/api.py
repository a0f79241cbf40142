"""/api/v1/guests/<pk>/backup|restore and /api/v1/backups/<pk>/: serializers, views, `api_urlpatterns`."""

from __future__ import annotations

from django.urls import path
from rest_framework import exceptions, serializers
from rest_framework.views import APIView

from apps.core.api import ActionAPIMixin, operation_handler
from apps.proxmox import ProxmoxError
from apps.storage.selectors import storage_content_list

from ...models import Guest
from ...selectors import guest_backups
from ..backup_jobs.validation import COMPRESSIONS, MODES
from ..base import GuestActionAPIView
from .services import backup_delete, guest_backup, guest_restore


class BackupRequestSerializer(serializers.Serializer):
    storage = serializers.CharField(max_length=100, help_text="a storage holding `backup` content")
    mode = serializers.ChoiceField(choices=[m for m, _ in MODES], default="snapshot")
    compress = serializers.ChoiceField(choices=[c for c, _ in COMPRESSIONS], default="zstd")
    notes = serializers.CharField(required=False, allow_blank=True, max_length=1024, default="")
    protected = serializers.BooleanField(required=False, default=False)


class RestoreRequestSerializer(serializers.Serializer):
    backup = serializers.CharField(max_length=512, help_text="volid of one of the guest's backups, e.g. nfs-store:backup/vzdump-...")
    target = serializers.ChoiceField(choices=["new", "same"], default="new")
    storage = serializers.CharField(max_length=100, required=False, allow_blank=True, default="", help_text="disk storage (optional)")
    start = serializers.BooleanField(required=False, default=False)


class GuestBackupAPIView(GuestActionAPIView):
    """Back up the guest now (202 with the operation; its progress is vzdump's percentage)."""

    @operation_handler(serializer=BackupRequestSerializer, audit="guests.guest_backup")
    def post(self, guest, data):
        return guest_backup(guest=guest, user=self.request.user, **data)


class GuestRestoreAPIView(GuestActionAPIView):
    """Restore one of the guest's backups over it (`same`) or as a new guest (`new`)."""

    @operation_handler(serializer=RestoreRequestSerializer, audit="guests.guest_restore",
                       audit_fields={"volid": "backup"})
    def post(self, guest, data):
        backup = guest_backups(user=self.request.user, guest=guest).filter(volid=data["backup"]).first()
        if backup is None:
            raise exceptions.ValidationError({"backup": [f"'{data['backup']}' is not a backup of {guest}"]})
        try:
            return guest_restore(guest=guest, user=self.request.user, backup=backup, target=data["target"],
                                 storage=data["storage"], start=data["start"])
        except ProxmoxError as exc:
            raise exceptions.APIException(f"Could not reserve a vmid. Proxmox said: {exc}") from exc


class BackupDeleteAPIView(ActionAPIMixin, APIView):
    """Delete a backup volume (202 with the operation)."""

    def get_action_object(self):
        backup = storage_content_list(user=self.request.user).filter(pk=self.kwargs["pk"], content="backup").first()
        if backup is None:
            raise exceptions.NotFound("No such backup.")
        self.guest = Guest.objects.filter(cluster_id=backup.storage.cluster_id, vmid=backup.vmid).first()
        return backup

    def get_audit_target(self, backup, result):
        return self.guest or backup.volid

    @operation_handler(request=None, audit="guests.backup_delete")
    def delete(self, backup, data):
        return backup_delete(backup=backup, user=self.request.user, guest=self.guest)


api_urlpatterns = [
    path("guests/<int:pk>/backup/", GuestBackupAPIView.as_view(), name="guest-backup"),
    path("guests/<int:pk>/restore/", GuestRestoreAPIView.as_view(), name="guest-restore"),
    path("backups/<int:pk>/", BackupDeleteAPIView.as_view(), name="backup-delete"),
]
