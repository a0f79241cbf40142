"""One FilterSet per model, shared by the list page and the API."""

import django_filters
from django.db.models import Q

from apps.core.filtersets import IdFilter, YesNoFilter

from .choices import GuestStatus, GuestType
from .models import Guest, Snapshot


def _clusters(request):
    from apps.nodes.selectors import cluster_list

    return cluster_list(user=getattr(request, "user", None))


class GuestFilterSet(django_filters.FilterSet):
    q = django_filters.CharFilter(method="search", label="Search")
    cluster = django_filters.ModelChoiceFilter(queryset=_clusters, label="Cluster", empty_label="Any")
    node = django_filters.CharFilter(field_name="node__name", label="Node")
    type = django_filters.ChoiceFilter(choices=GuestType.choices, label="Type", empty_label="Any")
    status = django_filters.ChoiceFilter(choices=GuestStatus.choices, label="Status", empty_label="Any")
    pool = django_filters.CharFilter(label="Pool")
    tag = django_filters.CharFilter(method="filter_tag", label="Tag")
    template = YesNoFilter(label="Template")
    vmid = IdFilter(label="VM id")

    class Meta:
        model = Guest
        fields = ["q", "cluster", "node", "type", "status", "pool", "tag", "template", "vmid"]

    def search(self, queryset, name, value):
        query = Q(name__icontains=value)
        if value.isdigit():
            query |= Q(vmid=int(value))
        return queryset.filter(query)

    def filter_tag(self, queryset, name, value):
        return queryset.filter(tags__contains=[value])


class SnapshotFilterSet(django_filters.FilterSet):
    guest = IdFilter(field_name="guest_id", label="Guest id")

    class Meta:
        model = Snapshot
        fields = ["guest"]
