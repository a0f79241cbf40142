from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import permissions, status
from rest_framework.decorators import action
from rest_framework.response import Response

from apps.core.api import ScopedModelViewSet, ScopedReadOnlyModelViewSet
from apps.permissions.drf import ActionPermission, ReadOnlyActorPermission

from .. import services
from ..filtersets import ClusterFilterSet, NodeFilterSet
from ..selectors import cluster_list, node_list
from .serializers import ClusterSerializer, NodeSerializer


class ClusterViewSet(ScopedModelViewSet):
    """Clusters. Create and connection edits test the connection first (400 with field errors,
    nothing saved); in pin mode without `fingerprint` the 400 names the fingerprint the server
    presents, to confirm and resubmit. `token_secret` and the optional `root_password` (root@pam, for
    container device passthrough only) are write-only; `root_credential` says whether one is stored."""

    selector = cluster_list
    serializer_class = ClusterSerializer
    filterset_class = ClusterFilterSet
    # Tenants see their clusters read-only; registering and changing them is the operators'.
    permission_classes = [permissions.IsAuthenticated, ReadOnlyActorPermission,
                          ActionPermission.for_action("cluster.manage")]
    ordering_fields = ["name", "status", "last_sync_at", "created"]
    ordering = ["name"]

    def perform_create(self, serializer):
        values = {k: v for k, v in serializer.validated_data.items() if k != "forget_root_password"}
        values.setdefault("ca_cert", "")
        values.setdefault("fingerprint", "")
        serializer.instance = services.cluster_create(user=self.request.user, request=self.request, **values)

    def create(self, request, *args, **kwargs):
        serializer = self.get_serializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        self.perform_create(serializer)
        # Re-read through the selector so computed fields (node counts) are present.
        instance = self.get_queryset().get(pk=serializer.instance.pk)
        return Response(self.get_serializer(instance).data, status=status.HTTP_201_CREATED)

    def perform_update(self, serializer):
        services.cluster_update(cluster=serializer.instance, user=self.request.user, request=self.request,
                                **serializer.validated_data)

    def update(self, request, *args, **kwargs):
        partial = kwargs.pop("partial", False)
        instance = self.get_object()
        serializer = self.get_serializer(instance, data=request.data, partial=partial)
        serializer.is_valid(raise_exception=True)
        self.perform_update(serializer)
        return Response(self.get_serializer(self.get_queryset().get(pk=instance.pk)).data)

    def perform_destroy(self, instance):
        services.cluster_delete(cluster=instance, user=self.request.user, request=self.request)

    @extend_schema(request=None, responses={202: OpenApiResponse(description="sync queued")})
    @action(detail=True, methods=["post"])
    def sync(self, request, pk=None):
        """Queue a sync of this cluster now (202); deduplicated with one already queued."""
        cluster = self.get_object()
        queued = services.cluster_sync_request(cluster=cluster, user=request.user, request=request)
        return Response({"cluster": cluster.pk, "queued": queued}, status=status.HTTP_202_ACCEPTED)


class NodeViewSet(ScopedReadOnlyModelViewSet):
    selector = node_list
    serializer_class = NodeSerializer
    filterset_class = NodeFilterSet
    ordering_fields = ["name", "status", "cpu", "mem", "disk", "cluster__name"]
    ordering = ["cluster__name", "name"]


