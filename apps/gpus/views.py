from django.contrib.auth.mixins import LoginRequiredMixin
from django.http import Http404
from django.shortcuts import redirect, render
from django.utils.cache import patch_vary_headers
from django.views import View

from apps.core.models import AuditResult
from apps.core.services import audit_log
from apps.core.views import ObjectListView
from apps.nodes.selectors import cluster_get

from . import services
from .filtersets import GpuDeviceFilterSet
from .selectors import gpu_device_list, gpu_map
from .tables import GpuDeviceTable


class GpuDeviceListView(ObjectListView):
    """The GPU map (one column per node) above a sortable, filterable table of every GPU."""

    selector = gpu_device_list
    table_class = GpuDeviceTable
    filterset_class = GpuDeviceFilterSet
    title = "GPUs"

    def get_live_groups(self):
        return [services.live_group(entry.cluster.pk) for entry in self.gpu_map]

    def get_context_data(self, **kwargs):
        self.gpu_map = gpu_map(user=self.request.user)
        return super().get_context_data(gpu_map=self.gpu_map, **kwargs)


class GpuRefreshView(LoginRequiredMixin, View):
    """POST cluster=<id>: queue a GPU inventory refresh of that cluster (a worker makes the calls)."""

    def post(self, request):
        cluster = cluster_get(user=request.user, pk=request.POST.get("cluster") or request.GET.get("cluster"))
        if cluster is None:
            raise Http404("no such cluster")
        services.gpu_refresh_enqueue(cluster_id=cluster.pk, force=True)
        audit_log(user=request.user, action="gpus.gpu_inventory_refresh", target=cluster,
                  result=AuditResult.ACCEPTED, request=request)
        if not getattr(request, "htmx", None):
            return redirect("gpus:gpudevice_list")
        response = render(request, "gpus/partials/refresh_queued.html", {"cluster": cluster})
        patch_vary_headers(response, ("HX-Request",))
        return response
