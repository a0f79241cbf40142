"""One FilterSet per model, shared by the HA pages and the API."""

import django_filters

from apps.core.filtersets import IdFilter

from .choices import EventKind, RuleType
from .models import HaEvent, HaResource, HaRule, ReplicationJob


class HaEventFilterSet(django_filters.FilterSet):
    cluster = IdFilter(field_name="cluster_id", label="Cluster id")
    guest = IdFilter(field_name="guest_id", label="Guest id")
    vmid = django_filters.NumberFilter(field_name="guest__vmid", label="VMID")
    kind = django_filters.MultipleChoiceFilter(choices=EventKind.choices, label="Kind")
    sid = django_filters.CharFilter(label="HA id")
    node = django_filters.CharFilter(label="Node")
    after = django_filters.IsoDateTimeFilter(field_name="at", lookup_expr="gte", label="From")
    before = django_filters.IsoDateTimeFilter(field_name="at", lookup_expr="lt", label="Until")

    class Meta:
        model = HaEvent
        fields = ["cluster", "guest", "vmid", "kind", "sid", "node", "after", "before"]


class HaResourceFilterSet(django_filters.FilterSet):
    cluster = IdFilter(field_name="cluster_id", label="Cluster id")
    guest = IdFilter(field_name="guest_id", label="Guest id")
    node = django_filters.CharFilter(label="Node")
    state = django_filters.CharFilter(label="State")

    class Meta:
        model = HaResource
        fields = ["cluster", "guest", "node", "state"]


class HaRuleFilterSet(django_filters.FilterSet):
    cluster = IdFilter(field_name="cluster_id", label="Cluster id")
    type = django_filters.ChoiceFilter(choices=RuleType.choices, label="Type")
    resource = django_filters.CharFilter(field_name="resources", lookup_expr="contains", method="filter_resource",
                                         label="HA id")

    class Meta:
        model = HaRule
        fields = ["cluster", "type", "resource"]

    def filter_resource(self, queryset, name, value):
        return queryset.filter(resources__contains=[value])


class ReplicationJobFilterSet(django_filters.FilterSet):
    cluster = IdFilter(field_name="cluster_id", label="Cluster id")
    guest = IdFilter(field_name="guest_id", label="Guest id")
    target = django_filters.CharFilter(label="Target node")

    class Meta:
        model = ReplicationJob
        fields = ["cluster", "guest", "target"]
