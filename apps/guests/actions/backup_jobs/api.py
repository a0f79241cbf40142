"""/api/v1/backup-jobs/: serializer, scoped viewset and `api_urlpatterns` (its router)."""

from __future__ import annotations

from django.core.exceptions import PermissionDenied
from rest_framework import exceptions, serializers
from rest_framework.routers import SimpleRouter

from apps.core.api import ScopedModelViewSet
from apps.core.limits import MaxKeysValidator
from apps.proxmox import ProxmoxError

from ...models import BackupJob
from .services import backup_job_create, backup_job_delete, backup_job_list, backup_job_update
from .validation import COMPRESSIONS, MODES, SELECTIONS
from .views import _job_initial


class BackupJobSerializer(serializers.ModelSerializer):
    vmids = serializers.ListField(child=serializers.IntegerField(min_value=100, max_value=999999999), required=False,
                                  default=list, max_length=1000)
    retention = serializers.DictField(child=serializers.IntegerField(min_value=0, max_value=100000, allow_null=True),
                                      required=False, validators=[MaxKeysValidator(16)],
                                      default=dict, help_text="keep-last, keep-hourly, keep-daily, keep-weekly, "
                                                              "keep-monthly, keep-yearly")
    selection = serializers.ChoiceField(choices=[s for s, _ in SELECTIONS], default="vmid")
    mode = serializers.ChoiceField(choices=[m for m, _ in MODES], default="snapshot")
    compress = serializers.ChoiceField(choices=[c for c, _ in COMPRESSIONS], default="zstd")

    class Meta:
        model = BackupJob
        fields = ["id", "cluster", "job_id", "enabled", "schedule", "storage", "selection", "vmids", "pool", "mode",
                  "compress", "retention", "comment", "next_run", "updated"]
        read_only_fields = ["id", "job_id", "next_run", "updated"]

    def validate_cluster(self, cluster):
        from apps.nodes.selectors import cluster_list

        if not cluster_list(user=self.context["request"].user).filter(pk=cluster.pk).exists():
            raise serializers.ValidationError("no such cluster")
        return cluster


class BackupJobViewSet(ScopedModelViewSet):
    """Scheduled backup jobs (stored in Proxmox's /cluster/backup, mirrored here). Writes go to
    Proxmox first; schedule, storage, selection and retention are checked before."""

    selector = backup_job_list
    serializer_class = BackupJobSerializer
    ordering = ["cluster", "job_id"]
    filterset_fields = ["cluster", "enabled", "storage"]

    def _data(self, serializer) -> dict:
        return {k: v for k, v in serializer.validated_data.items() if k != "cluster"}

    def _call(self, fn, **kwargs):
        try:
            return fn(user=self.request.user, request=self.request, **kwargs)
        except PermissionDenied as exc:
            raise exceptions.PermissionDenied(str(exc))
        except ProxmoxError as exc:
            raise exceptions.APIException(f"Proxmox did not answer: {exc}")

    def perform_create(self, serializer):
        serializer.instance = self._call(backup_job_create, cluster=serializer.validated_data["cluster"],
                                         data=self._data(serializer))

    def perform_update(self, serializer):
        job = serializer.instance
        data = {**_job_initial(job), **self._data(serializer)}
        data.pop("cluster", None)
        if "retention" not in serializer.validated_data:
            data["retention"] = job.retention
        serializer.instance = self._call(backup_job_update, job=job, data=data)

    def perform_destroy(self, instance):
        self._call(backup_job_delete, job=instance)


router = SimpleRouter()
router.register("backup-jobs", BackupJobViewSet, basename="backupjob")

api_urlpatterns = router.urls
