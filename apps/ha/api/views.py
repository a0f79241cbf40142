from dataclasses import asdict

from django.core.exceptions import ValidationError
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import exceptions
from rest_framework.decorators import action
from rest_framework.response import Response

from apps.core.api import ScopedReadOnlyModelViewSet, operation_action
from apps.guests.selectors import guest_list
from apps.nodes.selectors import cluster_get
from apps.permissions.policy import can

from .. import replication, services
from ..explain import explain
from ..filtersets import (
    HaEventFilterSet,
    HaResourceFilterSet,
    HaRuleFilterSet,
    ReplicationJobFilterSet,
)
from ..models import HaClusterState
from ..selectors import (
    ha_event_list,
    ha_resource_list,
    ha_rule_list,
    replication_job_list,
)
from .serializers import (
    HaClusterStateSerializer,
    HaEventSerializer,
    HaMoveSerializer,
    HaResourceSerializer,
    HaResourceSetSerializer,
    HaRuleSerializer,
    HaRuleWriteSerializer,
    MaintenanceSerializer,
    PlacementSerializer,
    ReplicationJobCreateSerializer,
    ReplicationJobSerializer,
    ReplicationJobUpdateSerializer,
)


def _accepted(request):
    """202 with the operation, as every HA write answers (documented for the schema)."""
    from apps.operations.api.serializers import OperationSerializer

    return extend_schema(request=request, responses={202: OperationSerializer})


def ha_state_list(*, user):
    """Cluster HA states: operators and auditors (tenants read their guests' resources instead)."""
    from apps.nodes.selectors import cluster_list

    if not can(user, "ha.view"):
        return HaClusterState.objects.none()
    return HaClusterState.objects.filter(cluster__in=cluster_list(user=user)).select_related("cluster")


class HaClusterStateViewSet(ScopedReadOnlyModelViewSet):
    """Quorum, votes, CRM master, LRMs, fencing, Ceph health and warnings per cluster (by cluster id)."""

    selector = ha_state_list
    serializer_class = HaClusterStateSerializer
    lookup_field = "cluster"
    lookup_url_kwarg = "ha_cluster"
    ordering = ["cluster__name"]

    @operation_action(serializer=MaintenanceSerializer, audit="ha.node_maintenance")
    def maintenance(self, state, data):
        """Drain a node (`enable`: true) or bring it back (false): 202 with the operation."""
        node = state.cluster.nodes.filter(name=data["node"]).first()
        if node is None:
            raise ValidationError({"node": [f"no node {data['node']} in {state.cluster}"]})
        return services.ha_node_maintenance(node=node, user=self.request.user, enable=data["enable"])


class HaResourceViewSet(ScopedReadOnlyModelViewSet):
    """HA resources (tenants: their guests' only). POST set/ puts guests under HA; remove/, migrate/."""

    lookup_url_kwarg = "ha_resource"
    selector = ha_resource_list
    serializer_class = HaResourceSerializer
    filterset_class = HaResourceFilterSet
    ordering_fields = ["sid", "node", "state", "updated"]
    ordering = ["cluster_id", "sid"]

    @operation_action(detail=False, url_path="set", serializer=HaResourceSetSerializer, audit="ha.resource_set")
    def set_resources(self, obj, data):
        """Put guests under HA or change their options (one operation): 202."""
        data = dict(data)
        ids = data.pop("guests")
        guests = list(guest_list(user=self.request.user).filter(pk__in=ids))
        if len(guests) != len(set(ids)):  # ids in the body, not the URL: a field error naming them
            missing = sorted(set(ids) - {g.pk for g in guests})
            raise exceptions.ValidationError({"guests": [f"no guest with id {', '.join(map(str, missing))}"]})
        return services.ha_resources_set(guests=guests, user=self.request.user, **data)

    @operation_action(audit="ha.resource_remove", request=None)
    def remove(self, resource, data):
        """Take the guest out of HA: 202."""
        if resource.guest is None:
            raise ValidationError({"guest": ["the guest of this HA resource is not in the inventory"]})
        return services.ha_resource_remove(guest=resource.guest, user=self.request.user)

    @operation_action(serializer=HaMoveSerializer, audit="ha.resource_move", audit_fields=("node",))
    def migrate(self, resource, data):
        """Ask the CRM to migrate (or `relocate`) the guest to `node`: 202."""
        if resource.guest is None:
            raise ValidationError({"guest": ["the guest of this HA resource is not in the inventory"]})
        return services.ha_resource_move(guest=resource.guest, user=self.request.user, node=data["node"],
                                         relocate=data["relocate"])

    @extend_schema(responses=PlacementSerializer)
    @action(detail=True, methods=["get"])
    def explain(self, request, ha_resource=None):
        """Why it runs where it runs and where the CRM would restart it if its node failed."""
        placement = explain(self.get_object())
        return Response(PlacementSerializer(asdict(placement)).data)


class HaRuleViewSet(ScopedReadOnlyModelViewSet):
    """Node-affinity and resource-affinity rules. POST (create), PUT/PATCH and DELETE answer 202
    with the operation; a bad rule is a 400 naming the field."""

    lookup_url_kwarg = "ha_rule"
    selector = ha_rule_list
    serializer_class = HaRuleSerializer
    filterset_class = HaRuleFilterSet
    ordering = ["cluster_id", "order", "rule"]
    http_method_names = ["get", "post", "put", "patch", "delete", "head", "options"]

    def _write(self, request, rule=None):
        checked = HaRuleWriteSerializer(data=request.data, partial=request.method == "PATCH")
        checked.is_valid(raise_exception=True)
        data = dict(checked.validated_data)
        if rule is None:
            cluster = cluster_get(user=request.user, pk=data.get("cluster"))
            if cluster is None:
                raise ValidationError({"cluster": ["no cluster with this id"]})
        else:
            cluster = rule.cluster
            if request.method == "PATCH":
                data = {"resources": rule.resources, "nodes": rule.nodes, "strict": rule.strict,
                        "affinity": rule.affinity, "disable": rule.disable, "comment": rule.comment,
                        **{k: v for k, v in request.data.items() if k in data}}
        return self.run_action(request, perform=lambda view, obj, d: services.ha_rule_save(
            cluster=cluster, user=request.user, data=data, existing=rule), audit="ha.rule_save")

    @_accepted(HaRuleWriteSerializer)
    def create(self, request, *args, **kwargs):
        return self._write(request)

    @_accepted(HaRuleWriteSerializer)
    def update(self, request, *args, **kwargs):
        return self._write(request, self.get_object())

    @_accepted(HaRuleWriteSerializer)
    def partial_update(self, request, *args, **kwargs):
        return self._write(request, self.get_object())

    @_accepted(None)
    def destroy(self, request, *args, **kwargs):
        rule = self.get_object()
        return self.run_action(request, perform=lambda view, obj, d: services.ha_rule_delete(rule=rule, user=request.user),
                               audit="ha.rule_delete")


class HaEventViewSet(ScopedReadOnlyModelViewSet):
    """The HA timeline: filter by cluster, guest, vmid, kind (repeatable), sid, node, after/before."""

    lookup_url_kwarg = "ha_event"
    selector = ha_event_list
    serializer_class = HaEventSerializer
    filterset_class = HaEventFilterSet
    ordering_fields = ["at"]
    ordering = ["-at", "-id"]


class ReplicationJobViewSet(ScopedReadOnlyModelViewSet):
    """Storage replication jobs with their last sync, duration, fail count and error (tenants: their
    guests' jobs, read only). POST creates one, PUT/PATCH change its schedule, rate limit, comment
    or disabled flag, DELETE (`?keep=1` keeps the copies on the target) removes it: operators only,
    each answered 202 with the operation; what Proxmox would refuse is a 400 naming the field."""

    lookup_url_kwarg = "ha_job"
    selector = replication_job_list
    serializer_class = ReplicationJobSerializer
    filterset_class = ReplicationJobFilterSet
    ordering = ["cluster_id", "job_id"]
    http_method_names = ["get", "post", "put", "patch", "delete", "head", "options"]

    def _create(self, view, obj, data):
        data = dict(data)
        guest = guest_list(user=self.request.user).filter(pk=data.pop("guest")).select_related("cluster", "node").first()
        if guest is None:  # a reference in the body, not the URL: a field error naming it
            raise exceptions.ValidationError({"guest": ["no guest with this id"]})
        return replication.replication_job_create(guest=guest, user=self.request.user, **data)

    @_accepted(ReplicationJobCreateSerializer)
    def create(self, request, *args, **kwargs):
        return self.run_action(request, perform=self._create, serializer=ReplicationJobCreateSerializer,
                               audit="ha.replication_create", audit_fields=("target",))

    def _update(self, request):
        job = self.get_object()
        checked = ReplicationJobUpdateSerializer(data=request.data, partial=request.method == "PATCH")
        checked.is_valid(raise_exception=True)
        data = dict(checked.validated_data)
        return self.run_action(request, perform=lambda view, obj, d: replication.replication_job_update(
            job=job, user=request.user, data=data), audit="ha.replication_update", target=lambda view, d: job)

    @_accepted(ReplicationJobUpdateSerializer)
    def update(self, request, *args, **kwargs):
        return self._update(request)

    @_accepted(ReplicationJobUpdateSerializer)
    def partial_update(self, request, *args, **kwargs):
        return self._update(request)

    @extend_schema(parameters=[OpenApiParameter("keep", OpenApiTypes.BOOL, description="Keep the copies on the target")])
    @_accepted(None)
    def destroy(self, request, *args, **kwargs):
        job = self.get_object()
        keep = str(request.query_params.get("keep", "")).lower() in ("1", "true", "yes", "on")
        return self.run_action(request, perform=lambda view, obj, d: replication.replication_job_delete(
            job=job, user=request.user, keep=keep), audit="ha.replication_delete", target=lambda view, d: job)
