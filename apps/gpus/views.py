from django.contrib import messages
from django.contrib.auth.mixins import LoginRequiredMixin
from django.core.exceptions import ValidationError
from django.http import Http404
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views import View

from apps.core.actions import ActionView, error_text, field_errors
from apps.core.views import ObjectListView
from apps.nodes.selectors import cluster_get
from apps.permissions.policy import can

from . import profiles, services
from .attach import blocker, gpu_attach, gpu_detach
from .filtersets import GpuDeviceFilterSet
from .forms import GpuAttachForm, GpuProfileForm, profile_initial
from .placement import free_by_node
from .selectors import gpu_allocation_list, gpu_device_list, gpu_map, gpu_profile_list
from .tables import GpuDeviceTable


class GpuDeviceListView(ObjectListView):
    """The GPU map (one column per node) above a sortable, filterable table of every GPU."""

    selector = gpu_device_list
    table_class = GpuDeviceTable
    filterset_class = GpuDeviceFilterSet
    title = "GPUs"

    def get_live_groups(self):
        if not can(self.request.actor, "infrastructure.view"):  # the pushed map is the operators'
            return []
        return [services.live_group(entry.cluster.pk) for entry in self.gpu_map]

    def get_context_data(self, **kwargs):
        self.gpu_map = gpu_map(user=self.request.user)
        return super().get_context_data(gpu_map=self.gpu_map, **kwargs)


class GpuRefreshView(ActionView):
    """POST cluster=<id>: queue a GPU inventory refresh of that cluster (a worker makes the calls)."""

    context_object_name = "cluster"
    success_template_name = "gpus/partials/refresh_queued.html"
    redirect_full_page = True
    audit_action = "gpus.gpu_inventory_refresh"

    def get_object(self):
        pk = self.request.POST.get("cluster") or self.request.GET.get("cluster")
        cluster = cluster_get(user=self.request.user, pk=pk)
        if cluster is None:
            raise Http404("no such cluster")
        return cluster

    def get_success_url(self, result):
        return reverse("gpus:gpudevice_list")

    def perform(self, form):
        services.gpu_refresh_enqueue(cluster_id=self.object.pk, force=True, user=self.request.user)  # gpu.refresh


# -- profiles (operators manage; tenants see what is offered to them) ------------------------------

class GpuProfileListView(LoginRequiredMixin, View):
    def get(self, request):
        profiles = list(gpu_profile_list(user=request.user).select_related("cluster").order_by("cluster__name", "name"))
        rows = [{"profile": p, "free": free_by_node(p), "held": p.allocations.count(), "blocked": blocker(p)}
                for p in profiles]
        return render(request, "gpus/gpuprofile_list.html", {
            "rows": rows, "title": "GPU profiles", "may_manage": can(request.actor, "gpu_profile.manage")})


class GpuProfileEditView(LoginRequiredMixin, View):
    """GET: the form (new, or the profile's); POST: save through the service (mapping on Proxmox
    first), errors back on their fields."""

    def _profile(self, request, pk):
        if pk is None:
            return None
        profile = gpu_profile_list(user=request.user).filter(pk=pk).first()
        if profile is None:
            raise Http404("No such GPU profile.")
        return profile

    def _page(self, request, form, profile, status=200):
        allocations = list(gpu_allocation_list(user=request.user).filter(profile=profile)) if profile else []
        return render(request, "gpus/gpuprofile_form.html", {
            "form": form, "profile": profile, "allocations": allocations, "blocked": blocker(profile) if profile else "",
            "title": profile.name if profile else "New GPU profile",
            "may_manage": can(request.actor, "gpu_profile.manage")}, status=status)

    def get(self, request, pk=None):
        profile = self._profile(request, pk)
        initial = profile_initial(profile) if profile else {"q35": True}
        return self._page(request, GpuProfileForm(initial=initial, user=request.user), profile)

    def post(self, request, pk=None):
        profile = self._profile(request, pk)
        form = GpuProfileForm(request.POST, user=request.user)
        if not form.is_valid():
            return self._page(request, form, profile, status=400)
        cluster = cluster_get(user=request.user, pk=form.cleaned_data["cluster"])
        if cluster is None:
            raise Http404("No such cluster.")
        try:
            profile = profiles.gpu_profile_save(user=request.user, cluster=cluster, data=form.data_for_service(),
                                                profile=profile, request=request)
        except ValidationError as exc:
            for key, messages in field_errors(exc).items():
                for message in messages:
                    form.add_error(key if key in form.fields else None, message)
            return self._page(request, form, profile, status=400)
        messages.success(request, f"GPU profile {profile.name} saved")
        return redirect("gpus:gpuprofile", pk=profile.pk)


class GpuProfileDeleteView(LoginRequiredMixin, View):
    def post(self, request, pk):
        profile = gpu_profile_list(user=request.user).filter(pk=pk).first()
        if profile is None:
            raise Http404("No such GPU profile.")
        try:
            profiles.gpu_profile_delete(user=request.user, profile=profile, request=request)
        except ValidationError as exc:
            messages.error(request, error_text(exc, keys=False))
            return redirect("gpus:gpuprofile", pk=profile.pk)
        messages.success(request, f"GPU profile {profile.name} deleted")
        return redirect("gpus:gpuprofile_list")


# -- a guest's GPUs ---------------------------------------------------------------------------------

class GpuAttachView(ActionView):
    """POST gpu_profile=<id>: give the stopped guest a GPU (operation gpu.attach); the panel's form
    answers with the progress panel out of band."""

    form_class = GpuAttachForm
    template_name = success_template_name = "gpus/partials/guest_gpu_attach.html"
    context_object_name = "guest"
    progress_oob = True
    audit_action, audit_fields = "gpus.gpu_attach", ("gpu_profile",)

    def get_object(self):
        from apps.guests.actions.common import guest_or_404

        return guest_or_404(self.request, self.kwargs["guest_pk"])

    def get_form_kwargs(self):
        return {"user": self.request.user, "guest": self.object}

    def perform(self, form):
        return gpu_attach(guest=self.object, user=self.request.user, profile_id=form.cleaned_data["gpu_profile"])


class GpuDetachView(ActionView):
    """POST: remove this GPU from its stopped guest (operation gpu.detach)."""

    context_object_name = "allocation"
    success_template_name = "gpus/partials/guest_gpu_operation.html"
    audit_action = "gpus.gpu_detach"

    def get_object(self):
        allocation = gpu_allocation_list(user=self.request.user).filter(pk=self.kwargs["pk"]).first()
        if allocation is None:
            raise Http404("No such GPU allocation.")
        return allocation

    def perform(self, form):
        return gpu_detach(allocation=self.object, user=self.request.user)
