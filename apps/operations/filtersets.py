import django_filters

from .choices import OperationStatus
from .models import Operation


class OperationFilterSet(django_filters.FilterSet):
    q = django_filters.CharFilter(method="search", label="Search")
    status = django_filters.MultipleChoiceFilter(choices=OperationStatus.choices)
    kind = django_filters.CharFilter()
    target_type = django_filters.CharFilter()
    target_id = django_filters.CharFilter()
    cluster_id = django_filters.NumberFilter()
    created_by = django_filters.CharFilter(field_name="created_by__username")
    created_after = django_filters.IsoDateTimeFilter(field_name="created", lookup_expr="gte")
    created_before = django_filters.IsoDateTimeFilter(field_name="created", lookup_expr="lt")

    class Meta:
        model = Operation
        fields = ["q", "status", "kind", "target_type", "target_id", "cluster_id", "created_by"]

    def search(self, queryset, name, value):
        from django.db.models import Q

        return queryset.filter(Q(title__icontains=value) | Q(target_repr__icontains=value)
                               | Q(kind__icontains=value) | Q(error__icontains=value))
