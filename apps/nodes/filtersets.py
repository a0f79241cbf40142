import django_filters
from django.db.models import Q

from .choices import ClusterStatus, NodeStatus, TlsMode
from .models import Cluster, Node


class ClusterFilterSet(django_filters.FilterSet):
    q = django_filters.CharFilter(method="search", label="Search")
    status = django_filters.ChoiceFilter(choices=ClusterStatus.choices, label="Status", empty_label="Any")
    tls_mode = django_filters.ChoiceFilter(choices=TlsMode.choices, label="TLS", empty_label="Any")

    class Meta:
        model = Cluster
        fields = ["q", "status", "tls_mode"]

    def search(self, queryset, name, value):
        return queryset.filter(Q(name__icontains=value) | Q(api_url__icontains=value) | Q(pve_cluster_name__icontains=value))


def _clusters(request):
    # Choices scoped like everything else: nobody learns cluster names they may not see.
    from .selectors import cluster_list

    if request is None:
        return Cluster.objects.none()
    return cluster_list(user=request.user)


class NodeFilterSet(django_filters.FilterSet):
    """One FilterSet for the node list page and /api/v1/nodes/."""

    q = django_filters.CharFilter(method="search", label="Search")
    cluster = django_filters.ModelChoiceFilter(queryset=_clusters, label="Cluster", empty_label="Any")
    status = django_filters.ChoiceFilter(choices=NodeStatus.choices, label="Status", empty_label="Any")
    ha_state = django_filters.CharFilter(label="HA state")
    cpu_min = django_filters.NumberFilter(field_name="cpu", lookup_expr="gte", label="CPU ≥ (0-1)")

    class Meta:
        model = Node
        fields = ["q", "cluster", "status", "ha_state"]

    def search(self, queryset, name, value):
        return queryset.filter(Q(name__icontains=value) | Q(ip__icontains=value) | Q(cluster__name__icontains=value))
