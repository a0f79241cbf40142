"""REST: operators set a tenant's quotas (PUT/PATCH /api/v1/tenants/<id>/quota/; GET is the usage).

The body names the resources to change; a resource left out keeps its limit, null makes it
unlimited. Bytes for memory and disk, counts otherwise; GPUs per profile id under "gpus"."""

from __future__ import annotations

from rest_framework import serializers
from rest_framework.response import Response

from .. import policy
from ..choices import QuotaResource
from ..quotas import quota_set
from .serializers import QuotaUsageSerializer

MAX_LIMIT = 2**60  # far above any cluster; keeps the value a PostgreSQL bigint


def _limit(help_text: str):
    return serializers.IntegerField(required=False, allow_null=True, min_value=0, max_value=MAX_LIMIT,
                                    help_text=f"{help_text} null: unlimited; left out: unchanged.")


class QuotaSetSerializer(serializers.Serializer):
    vcpus = _limit("vCPUs of the tenant's guests that can run (templates excluded).")
    memory = _limit("Memory in bytes of the tenant's guests that can run.")
    disk = _limit("Disk in bytes of all the tenant's guests.")
    guests = _limit("Number of guests, templates included.")
    snapshots_per_guest = _limit("Snapshots of any one guest.")
    backups = _limit("Backup volumes of the tenant's guests.")
    gpus = serializers.DictField(
        child=serializers.IntegerField(allow_null=True, min_value=0, max_value=1024), required=False,
        help_text="GPUs per profile id: {\"<profile id>\": limit or null}.")

    def validate_gpus(self, value: dict) -> dict:
        if len(value) > 64:
            raise serializers.ValidationError("at most 64 GPU profiles")
        for key in value:
            if not key or len(key) > 59 or not key.replace("-", "").replace("_", "").replace(".", "").isalnum():
                raise serializers.ValidationError(f"{key[:64]!r} is not a GPU profile id (letters, digits, - _ .)")
        return value

    def limits(self) -> dict[str, int | None]:
        data = dict(self.validated_data)
        gpus = data.pop("gpus", {}) or {}
        return {**{r: data[r] for r in QuotaResource.values if r in data}, **{f"gpu:{k}": v for k, v in gpus.items()}}


def quota_update(request, tenant, actor) -> Response:
    """The PUT/PATCH branch of TenantViewSet.quota: 403 (audited) unless an operator; 400 naming the field."""
    policy.check(actor, "quota.set", tenant, request=request)
    serializer = QuotaSetSerializer(data=request.data)
    serializer.is_valid(raise_exception=True)
    rows = quota_set(tenant=tenant, limits=serializer.limits(), user=request.user, request=request._request)
    return Response(QuotaUsageSerializer(rows, many=True).data)
