from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.mixins import LoginRequiredMixin, UserPassesTestMixin
from django.core.exceptions import ValidationError
from django.http import Http404
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.cache import patch_vary_headers
from django.views import View
from django.views.generic import TemplateView

from apps.core.units import binary_size
from apps.core.views import ObjectDetailView, ObjectListView
from apps.operations.choices import ACTIVE_STATUSES
from apps.operations.selectors import operation_list
from apps.permissions.policy import actor_for_request, can, check, visible

from . import rrd, services
from .filtersets import ClusterFilterSet, NodeFilterSet
from .forms import ClusterForm, normalize_api_url
from .selectors import cluster_get, cluster_list, dashboard_clusters, node_list
from .tables import ClusterTable, NodeTable


class OperatorRequiredMixin(LoginRequiredMixin, UserPassesTestMixin):
    """Cluster management (policy action `cluster.manage`): an unseen cluster is 404, a seen one
    the user may not manage 403 (audited by the policy)."""

    def test_func(self):
        cluster = None
        if "pk" in self.kwargs:
            cluster = cluster_get(user=self.request.user, pk=self.kwargs["pk"])
            if cluster is None:
                raise Http404("no such cluster")
        check(self.request.user, "cluster.manage", cluster, request=self.request)
        return True


class DashboardView(LoginRequiredMixin, TemplateView):
    """The datacenter at a glance, all live: cluster cards are pushed to cluster-<id>; the figures
    and running operations are per user, so a pushed trigger makes the page re-ask (htmx GET)."""

    template_name = "dashboard/dashboard.html"

    def get(self, request, *args, **kwargs):
        if request.htmx:
            response = render(request, "dashboard/partials/dashboard_live.html",
                              {**self.live_context(), "operations_oob": True})
        else:
            response = super().get(request, *args, **kwargs)
        patch_vary_headers(response, ("HX-Request",))
        return response

    def live_context(self, clusters=None) -> dict:
        clusters = dashboard_clusters(user=self.request.user) if clusters is None else clusters
        nodes = [n for c in clusters for n in c.card_nodes]
        running = operation_list(user=self.request.user).filter(status__in=ACTIVE_STATUSES)
        return {
            "totals": {
                "clusters": len(clusters),
                "clusters_ok": sum(1 for c in clusters if c.status == "ok" and c.quorate),
                "nodes": len(nodes),
                "nodes_online": sum(1 for n in nodes if n.status == "online"),
            },
            "operations": list(running.order_by("-created")[:8]),
            "operations_count": running.count(),
        }

    def get_template_names(self):
        return ["dashboard/tenant.html" if self.tenant_actor() else self.template_name]

    def tenant_actor(self):
        """The actor when it is a tenant's user (their portal), else None."""
        actor = actor_for_request(self.request)
        return actor if actor.tenant is not None and not actor.sees_everything else None

    def tenant_context(self, actor) -> dict:
        """A tenant's portal: their guests, quota usage and running operations; no cluster cards
        (node details only as far as placement needs, i.e. in the create wizard)."""
        from django.apps import apps

        from apps.permissions.quotas import quota_usage

        quotas = quota_usage(tenant=actor.tenant)
        for row in quotas:
            limit, taken = row["limit"], row["used"] + row["reserved"]
            size = binary_size if row["resource"] in ("memory", "disk") else str
            row["percent"] = min(100, round(100 * taken / limit)) if limit else 0
            row["detail"] = f"{size(taken)} of {size(limit)}" if limit is not None else f"{size(taken)}, unlimited"
            if row["reserved"]:
                row["detail"] += f" ({size(row['reserved'])} reserved by operations in flight)"
        # guests sit above nodes: looked up through the app registry, scoped by the policy.
        guests = visible(actor, apps.get_model("guests", "Guest").objects.all()).select_related("node", "cluster")
        return {"tenant": actor.tenant, "quotas": quotas, "guests": guests.order_by("vmid"),
                "can_create": can(actor, "guest.create")}

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        actor = self.tenant_actor()
        if actor is not None:
            context.update(self.tenant_context(actor))
        clusters = dashboard_clusters(user=self.request.user)
        context.update(
            title="Dashboard",
            clusters=clusters,
            live_groups=[c.live_group for c in clusters] + [f"user-{self.request.user.pk}"],
            **self.live_context(clusters),
        )
        return context


class ClusterListView(ObjectListView):
    selector = cluster_list
    table_class = ClusterTable
    filterset_class = ClusterFilterSet
    title = "Clusters"

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        if can(self.request.user, "cluster.manage"):
            context["add_url_name"] = "nodes:cluster_add"
        return context


class ClusterDetailView(ObjectDetailView):
    selector = cluster_list

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        nodes = node_list(user=self.request.user).filter(cluster=self.object)
        context["node_table"] = NodeTable(nodes, orderable=False, exclude=("cluster",))
        context["live_groups"] = [self.object.live_group]
        return context


def _apply_errors(form, exc: ValidationError) -> None:
    for field, errors in exc.message_dict.items():
        for error in errors:
            form.add_error(field if field in form.fields else None, error)


class ClusterCreateView(OperatorRequiredMixin, View):
    """Register a cluster: the connection is tested before anything is saved. In pin mode without a
    fingerprint the server's fingerprint is fetched and shown for the operator to confirm."""

    template_name = "nodes/cluster_edit.html"

    def get(self, request):
        return render(request, self.template_name, {"form": ClusterForm(), "title": "Add a cluster"})

    def post(self, request):
        form = ClusterForm(request.POST)
        if form.is_valid():
            try:
                cluster = services.cluster_create(user=request.user, request=request, **form.service_values())
            except services.FingerprintConfirmationRequired as exc:
                form = _with_fingerprint(request.POST, exc.presented)
                _apply_errors(form, exc)
            except ValidationError as exc:
                _apply_errors(form, exc)
            else:
                messages.success(request, f"Cluster {cluster.name} registered; the first sync is running.")
                return redirect(cluster)
        return render(request, self.template_name, {"form": form, "title": "Add a cluster"}, status=400)


def _with_fingerprint(data, fingerprint: str) -> ClusterForm:
    data = data.copy()
    data["fingerprint"] = fingerprint
    form = ClusterForm(data)
    form.is_valid()
    return form


class ClusterFingerprintView(OperatorRequiredMixin, View):
    """htmx: fetch the certificate fingerprint the server presents (first contact), as a form fragment."""

    def post(self, request):
        context = {"fingerprint": "", "error": ""}
        try:
            url = normalize_api_url(request.POST.get("api_url", ""))
        except ValidationError as exc:
            url, context["error"] = "", " ".join(exc.messages)
        if not url:
            context["error"] = context["error"] or "Enter the API URL first."
        else:
            try:
                context["fingerprint"] = services.cluster_fetch_fingerprint(api_url=url)
            except ValidationError as exc:
                context["error"] = " ".join(exc.message_dict.get("api_url", exc.messages))
        return render(request, "nodes/partials/fingerprint_field.html", context)


class ClusterEditView(OperatorRequiredMixin, View):
    template_name = "nodes/cluster_edit.html"

    def get_object(self, pk):
        cluster = cluster_get(user=self.request.user, pk=pk)
        if cluster is None:
            raise Http404("No such cluster")
        return cluster

    def get(self, request, pk):
        cluster = self.get_object(pk)
        return render(request, self.template_name, {"form": ClusterForm(instance=cluster), "object": cluster,
                                                    "title": f"Edit {cluster.name}"})

    def post(self, request, pk):
        cluster = self.get_object(pk)
        form = ClusterForm(request.POST, instance=cluster)
        if form.is_valid():
            values = form.service_values()
            cluster.refresh_from_db()  # ModelForm validation mutated the instance; the service compares
            try:
                services.cluster_update(cluster=cluster, user=request.user, request=request, **values)
            except services.FingerprintConfirmationRequired as exc:
                form = _with_fingerprint(request.POST, exc.presented)
                _apply_errors(form, exc)
            except ValidationError as exc:
                _apply_errors(form, exc)
            else:
                messages.success(request, f"Cluster {cluster.name} saved.")
                return redirect(cluster)
        cluster.refresh_from_db()
        return render(request, self.template_name, {"form": form, "object": cluster,
                                                    "title": f"Edit {cluster.name}"}, status=400)


class ClusterDeleteView(OperatorRequiredMixin, View):
    def get(self, request, pk):
        cluster = cluster_get(user=request.user, pk=pk)
        if cluster is None:
            raise Http404("No such cluster")
        return render(request, "nodes/cluster_delete.html", {"object": cluster, "title": f"Remove {cluster.name}"})

    def post(self, request, pk):
        cluster = cluster_get(user=request.user, pk=pk)
        if cluster is None:
            raise Http404("No such cluster")
        name = cluster.name
        services.cluster_delete(cluster=cluster, user=request.user, request=request)
        messages.success(request, f"Cluster {name} removed from the control plane (Proxmox is untouched).")
        return redirect("nodes:cluster_list")


class ClusterSyncView(OperatorRequiredMixin, View):
    def post(self, request, pk):
        cluster = cluster_get(user=request.user, pk=pk)
        if cluster is None:
            raise Http404("No such cluster")
        queued = services.cluster_sync_request(cluster=cluster, user=request.user, request=request)
        messages.info(request, "Sync queued." if queued else "A sync is already queued.")
        return redirect(request.POST.get("next") or reverse("nodes:cluster", args=[cluster.pk]))


class NodeListView(ObjectListView):
    selector = node_list
    table_class = NodeTable
    filterset_class = NodeFilterSet
    title = "Nodes"

    def get_live_groups(self):
        return [f"cluster-{pk}" for pk in cluster_list(user=self.request.user).values_list("pk", flat=True)]


class NodeDetailView(ObjectDetailView):
    selector = node_list

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        node = self.object
        context["charts"] = rrd.chart_specs(rrd.cached_rrd(node.pk))
        context["live_groups"] = [node.cluster.live_group, f"node-{node.pk}"]
        context["operations"] = list(operation_list(user=self.request.user).filter(cluster_id=node.cluster_id)
                                     .order_by("-created")[:10])
        return context
