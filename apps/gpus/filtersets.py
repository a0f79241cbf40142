"""One FilterSet per model, shared by the GPU page and the API."""

import django_filters
from django.db.models import Q

from apps.core.filtersets import IdFilter, YesNoFilter

from .choices import GpuMode
from .models import GpuDevice, PciMapping

class GpuDeviceFilterSet(django_filters.FilterSet):
    q = django_filters.CharFilter(method="search", label="Search")
    cluster = django_filters.ModelChoiceFilter(queryset=lambda request: _clusters(request), empty_label="Any",
                                               label="Cluster")
    node = django_filters.CharFilter(field_name="node__name", label="Node")
    mode = django_filters.ChoiceFilter(choices=GpuMode.choices, method="filter_mode", label="Mode", empty_label="Any")
    mapping = django_filters.CharFilter(field_name="mappings__mapping_id", label="Mapping", distinct=True)
    mdev_type = django_filters.CharFilter(method="filter_mdev_type", label="vGPU profile")
    stale = YesNoFilter(label="Stale")

    class Meta:
        model = GpuDevice
        fields = ["q", "cluster", "node", "mode", "mapping", "mdev_type", "stale"]

    def search(self, queryset, name, value):
        return queryset.filter(Q(device_name__icontains=value) | Q(subsystem_device_name__icontains=value)
                               | Q(vendor_name__icontains=value) | Q(pci_id__icontains=value))

    def filter_mode(self, queryset, name, value):
        return queryset.filter(mdev_capable=value == GpuMode.VGPU)

    def filter_mdev_type(self, queryset, name, value):
        return queryset.filter(Q(mdev_types__type=value) | Q(mdev_types__name__iexact=value)).distinct()


class PciMappingFilterSet(django_filters.FilterSet):
    q = django_filters.CharFilter(method="search", label="Search")
    cluster = IdFilter(field_name="cluster_id", label="Cluster id")
    mdev = YesNoFilter(label="vGPU (mediated devices)")
    node = django_filters.CharFilter(method="filter_node", label="Node")

    class Meta:
        model = PciMapping
        fields = ["q", "cluster", "mdev", "node"]

    def search(self, queryset, name, value):
        return queryset.filter(Q(mapping_id__icontains=value) | Q(description__icontains=value))

    def filter_node(self, queryset, name, value):
        return queryset.filter(map__contains=[{"node": value}])


def _clusters(request):
    from apps.nodes.selectors import cluster_list

    return cluster_list(user=getattr(request, "user", None))
