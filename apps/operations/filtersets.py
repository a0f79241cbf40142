import django_filters

from apps.core.filtersets import DateTimeFilter, IdFilter

from .choices import OperationStatus
from .models import Operation


class OperationFilterSet(django_filters.FilterSet):
    q = django_filters.CharFilter(method="search", label="Search")
    status = django_filters.MultipleChoiceFilter(choices=OperationStatus.choices, label="Status")
    kind = django_filters.CharFilter(label="Kind")
    target_type = django_filters.CharFilter(label="Object type")
    target_id = django_filters.CharFilter(label="Object id")
    cluster_id = IdFilter(label="Cluster id")
    created_by = django_filters.CharFilter(field_name="created_by__username", label="Started by")
    created_after = DateTimeFilter(field_name="created", lookup_expr="gte", label="From")
    created_before = DateTimeFilter(field_name="created", lookup_expr="lt", label="Until")

    class Meta:
        model = Operation
        fields = ["q", "status", "kind", "target_type", "target_id", "cluster_id", "created_by"]

    def search(self, queryset, name, value):
        from django.db.models import Q

        return queryset.filter(Q(title__icontains=value) | Q(target_repr__icontains=value)
                               | Q(kind__icontains=value) | Q(error__icontains=value))
