import django_filters

from .models import AuditEntry, AuditResult


class AuditEntryFilterSet(django_filters.FilterSet):
    q = django_filters.CharFilter(method="search", label="Search")
    action = django_filters.CharFilter(lookup_expr="istartswith")
    result = django_filters.ChoiceFilter(choices=AuditResult.choices)
    created_after = django_filters.IsoDateTimeFilter(field_name="created", lookup_expr="gte", label="From")
    created_before = django_filters.IsoDateTimeFilter(field_name="created", lookup_expr="lt", label="Until")

    class Meta:
        model = AuditEntry
        fields = ["q", "action", "result", "username", "target_type", "target_id"]

    def search(self, queryset, name, value):
        from django.db.models import Q

        return queryset.filter(
            Q(username__icontains=value) | Q(action__icontains=value) | Q(target_repr__icontains=value)
        )
