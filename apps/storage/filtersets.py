"""One FilterSet per model, shared by the list pages and the API."""

import django_filters
from django.db.models import Q

from apps.core.filtersets import IdFilter, YesNoFilter

from .choices import ContentType, StorageStatus
from .models import Storage, StorageContent


class StorageFilterSet(django_filters.FilterSet):
    q = django_filters.CharFilter(method="search", label="Search")
    cluster = django_filters.ModelChoiceFilter(queryset=lambda request: _clusters(request), label="Cluster",
                                               empty_label="Any")
    node = django_filters.CharFilter(method="filter_node", label="Node")
    type = django_filters.CharFilter(lookup_expr="iexact", label="Type")
    content = django_filters.ChoiceFilter(choices=ContentType.choices, method="filter_content", label="Content")
    shared = YesNoFilter(label="Shared")
    status = django_filters.ChoiceFilter(choices=StorageStatus.choices, label="Status", empty_label="Any")

    class Meta:
        model = Storage
        fields = ["q", "cluster", "node", "type", "content", "shared", "status"]

    def search(self, queryset, name, value):
        return queryset.filter(Q(storage__icontains=value) | Q(type__icontains=value))

    def filter_node(self, queryset, name, value):
        # Local storage of that node, and shared storage the node reports.
        return queryset.filter(Q(node__name=value) | Q(node__isnull=True, nodes__contains=[value]))

    def filter_content(self, queryset, name, value):
        return queryset.filter(content__contains=[value])


class StorageContentFilterSet(django_filters.FilterSet):
    q = django_filters.CharFilter(field_name="volid", lookup_expr="icontains", label="Search")
    storage = IdFilter(field_name="storage_id", label="Storage id")
    cluster = IdFilter(field_name="storage__cluster_id", label="Cluster id")
    content = django_filters.ChoiceFilter(choices=ContentType.choices, label="Content", empty_label="Any")
    vmid = IdFilter(label="VM id")

    class Meta:
        model = StorageContent
        fields = ["q", "storage", "cluster", "content", "vmid"]


def _clusters(request):
    from apps.nodes.selectors import cluster_list

    return cluster_list(user=getattr(request, "user", None))
