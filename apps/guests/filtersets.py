"""One FilterSet per model, shared by the list page and the API."""

import django_filters
from django import forms
from django.db.models import Q

from .choices import GuestStatus, GuestType
from .models import Guest, Snapshot


def _clusters(request):
    from apps.nodes.selectors import cluster_list

    return cluster_list(user=getattr(request, "user", None))


# "Any" rather than django-filter's "Unknown" for an unset yes/no filter.
ANY_YES_NO = forms.Select(choices=[("", "Any"), ("true", "Yes"), ("false", "No")])


class GuestFilterSet(django_filters.FilterSet):
    q = django_filters.CharFilter(method="search", label="Search")
    cluster = django_filters.ModelChoiceFilter(queryset=_clusters)
    node = django_filters.CharFilter(field_name="node__name", label="Node")
    type = django_filters.ChoiceFilter(choices=GuestType.choices)
    status = django_filters.ChoiceFilter(choices=GuestStatus.choices)
    pool = django_filters.CharFilter()
    tag = django_filters.CharFilter(method="filter_tag", label="Tag")
    template = django_filters.BooleanFilter(widget=ANY_YES_NO)
    vmid = django_filters.NumberFilter()

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
    guest = django_filters.NumberFilter(field_name="guest_id")

    class Meta:
        model = Snapshot
        fields = ["guest"]
