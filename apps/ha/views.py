"""The HA page (per cluster: quorum, nodes, services, rules, replication, Ceph, timeline, warnings),
the timeline, the rule editor and the HA actions. Views read our tables only; actions go through
services (operations)."""

from __future__ import annotations

from datetime import datetime, timedelta

from django.contrib.auth.mixins import LoginRequiredMixin
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import Http404
from django.shortcuts import get_object_or_404
from django.views.generic import TemplateView

from apps.core.actions import ActionView
from apps.core.views import ObjectListView
from apps.guests.selectors import guest_get, guest_list
from apps.nodes.selectors import cluster_get, node_list
from apps.permissions.policy import can

from . import replication, services
from .explain import World, predict_failover
from .filtersets import HaEventFilterSet
from .forms import (
    REPLICATION_SLOTS,
    HaBulkForm,
    HaMoveForm,
    HaResourceForm,
    HaRuleForm,
    MaintenanceForm,
    ReplicationDeleteForm,
    ReplicationEditForm,
    ReplicationJobForm,
)
from .health import cluster_warnings
from .models import HaClusterState, HaRule, ReplicationJob
from .selectors import (
    ha_clusters,
    ha_event_list,
    ha_resource_list,
    ha_rule_list,
    replication_candidates,
    replication_job_list,
)
from .tables import HaEventTable

FENCE_DELAY = 60  # seconds a lost node waits before the CRM fences it (pve-ha-manager)
LOCK_EXPIRY = 120  # the dead node's agent lock must expire before recovery


def cluster_context(cluster) -> dict:
    """Everything the HA panel of one cluster shows, from our tables (the live push uses it too)."""
    state = HaClusterState.objects.filter(cluster=cluster).first()
    resources = list(ha_resource_list_all(cluster))
    replicated = set(ReplicationJob.objects.active().filter(cluster=cluster).values_list("vmid", flat=True))
    world = World(cluster)
    nodes = []
    by_node = {}
    for res in resources:
        by_node.setdefault(res.node, []).append(res)
    now = datetime.now().astimezone()
    for node in cluster.nodes.order_by("name"):
        lrm = (state.lrms.get(node.name) if state else None) or {}
        lost = (state.lost_at.get(node.name) if state else None)
        lost_at = datetime.fromisoformat(lost) if lost else None
        entry = {"node": node, "lrm": lrm.get("state", ""), "watchdog": lrm.get("watchdog", ""),
                 "online": (state.members.get(node.name, node.status == "online") if state else node.status == "online"),
                 "lost_at": lost_at, "services": by_node.get(node.name, []),
                 "maintenance": node.name in (state.maintenance if state else {})}
        if lost_at:
            entry["recovered"] = cluster.ha_events.filter(kind="recovery", node=node.name, at__gte=lost_at).exists()
            fence_at = lost_at + timedelta(seconds=FENCE_DELAY)
            entry["fence_in"] = max(0, int((fence_at - now).total_seconds()))
            entry["recover_by"] = lost_at + timedelta(seconds=LOCK_EXPIRY)
        nodes.append(entry)
    plans = {}
    for node in {r.node for r in resources if r.node}:
        for sid, placement in predict_failover(cluster, node, world).items():
            plans[sid] = placement
    for res in resources:
        res.plan = plans.get(res.sid)
    votes_pct = round(100 * state.votes / state.expected_votes) if state and state.expected_votes else 0
    needed_pct = round(100 * state.votes_needed / state.expected_votes) if state and state.expected_votes else 0
    ceph = dict(state.ceph, cluster=cluster) if state and state.ceph else None  # as ceph_card.html reads it
    if ceph and ceph.get("osds"):
        ceph["up_pct"] = round(100 * (ceph.get("osds_up") or 0) / ceph["osds"])
    if ceph and ceph.get("bytes_total"):
        ceph["used_pct"] = round(100 * (ceph.get("bytes_used") or 0) / ceph["bytes_total"])
    from apps.guests.models import Guest

    candidates = Guest.objects.filter(cluster=cluster, template=False).exclude(
        vmid__in=[r.vmid for r in resources if r.vmid is not None]).order_by("vmid")
    return {
        "cluster": cluster, "state": state, "nodes": nodes, "resources": resources, "candidates": list(candidates),
        "rules": list(HaRule.objects.filter(cluster=cluster)),
        "replication": list(ReplicationJob.objects.filter(cluster=cluster).select_related("guest")),
        "events": list(cluster.ha_events.select_related("guest")[:25]),
        "warnings": cluster_warnings(cluster, state, resources, replicated),
        "votes_pct": votes_pct, "needed_pct": needed_pct, "ceph": ceph,
    }


def ha_resource_list_all(cluster):
    from .models import HaResource

    return HaResource.objects.filter(cluster=cluster).select_related("guest", "guest__node")


class HaPageView(LoginRequiredMixin, TemplateView):
    """/ha/: one panel per cluster the user may watch; live through `ha-<cluster id>`."""

    template_name = "ha/ha.html"

    def get_context_data(self, **kwargs):
        if not can(self.request.user, "ha.view"):
            raise PermissionDenied("your role may not ha.view")
        from .live import group

        clusters = ha_clusters(user=self.request.user)
        panels = [cluster_context(c) for c in clusters]
        manage = can(self.request.user, "ha.manage")
        return super().get_context_data(panels=panels, live_groups=[group(c.pk, manage=manage) for c in clusters],
                                        may_manage=manage, **kwargs)


class HaEventListView(ObjectListView):
    """The whole timeline, filterable by cluster, guest and kind."""

    selector = ha_event_list
    table_class = HaEventTable
    filterset_class = HaEventFilterSet
    title = "HA events"


# -- rules -------------------------------------------------------------------------------------

class HaRuleEditView(ActionView):
    """GET the rule editor, POST saves it as an operation (field errors on the form's fields)."""

    template_name = "ha/rule_form.html"
    form_class = HaRuleForm
    redirect_full_page = True
    context_object_name = "rule"
    audit_action = "ha.rule_save"
    service_error_fields = {"nodes": "__all__"}

    def get_object(self):
        if "ha_rule" in self.kwargs:
            rule = ha_rule_list(user=self.request.user).filter(pk=self.kwargs["ha_rule"]).first()
            if rule is None:
                raise Http404("no such HA rule")
            self.cluster = rule.cluster
            return rule
        self.cluster = cluster_get(user=self.request.user, pk=self.kwargs["ha_cluster"])
        if self.cluster is None or not can(self.request.user, "ha.view"):
            raise Http404("no such cluster")
        return None

    def get_form_kwargs(self):
        return {"cluster": self.cluster, "resources": list(ha_resource_list_all(self.cluster)), "rule": self.object}

    def get_context_data(self, **kwargs):
        return super().get_context_data(cluster=self.cluster, **kwargs)

    def perform(self, form):
        return services.ha_rule_save(cluster=self.cluster, user=self.request.user, data=form.rule_data(),
                                     existing=self.object)


class HaRuleDeleteView(ActionView):
    redirect_full_page = True
    audit_action = "ha.rule_delete"

    def get_object(self):
        rule = ha_rule_list(user=self.request.user).filter(pk=self.kwargs["ha_rule"]).first()
        if rule is None:
            raise Http404("no such HA rule")
        return rule

    def perform(self, form):
        return services.ha_rule_delete(rule=self.object, user=self.request.user)


# -- guests ------------------------------------------------------------------------------------

class GuestHaView(ActionView):
    """The guest page's HA panel: GET the form, POST puts the guest under HA (or changes it)."""

    template_name = "ha/partials/guest_ha_form_fields.html"
    form_class = HaResourceForm
    context_object_name = "guest"
    audit_action = "ha.resource_set"

    def get_object(self):
        guest = guest_get(user=self.request.user, pk=self.kwargs["ha_guest"])
        if guest is None:
            raise Http404("no such guest")
        return guest

    def get_form(self, data=None, files=None):
        initial = {}
        res = ha_resource_list(user=self.request.user).filter(cluster_id=self.object.cluster_id,
                                                              vmid=self.object.vmid).first()
        if res is not None:
            initial = {"state": res.request_state or "started", "max_restart": res.max_restart,
                       "max_relocate": res.max_relocate, "failback": bool(res.failback), "comment": res.comment}
        return HaResourceForm(data, initial=initial) if data is not None else HaResourceForm(initial=initial)

    def perform(self, form):
        return services.ha_resources_set(guests=[self.object], user=self.request.user, **form.cleaned_data)


class GuestHaRemoveView(ActionView):
    context_object_name = "guest"
    audit_action = "ha.resource_remove"

    def get_object(self):
        guest = guest_get(user=self.request.user, pk=self.kwargs["ha_guest"])
        if guest is None:
            raise Http404("no such guest")
        return guest

    def perform(self, form):
        return services.ha_resource_remove(guest=self.object, user=self.request.user)


class GuestHaMoveView(ActionView):
    """Ask the CRM to migrate (or relocate) an HA guest to another node."""

    form_class = HaMoveForm
    context_object_name = "guest"
    audit_action = "ha.resource_move"
    audit_fields = ("node",)

    def get_object(self):
        guest = guest_get(user=self.request.user, pk=self.kwargs["ha_guest"])
        if guest is None:
            raise Http404("no such guest")
        return guest

    def get_form_kwargs(self):
        return {"nodes": list(self.object.cluster.nodes.order_by("name").values_list("name", flat=True))}

    def perform(self, form):
        return services.ha_resource_move(guest=self.object, user=self.request.user, node=form.cleaned_data["node"],
                                         relocate=form.cleaned_data["relocate"])


class HaBulkView(ActionView):
    """POST guests=1,2,3 + options: put several guests under HA in one operation."""

    form_class = HaBulkForm
    audit_action = "ha.resource_set"
    redirect_full_page = True

    def perform(self, form):
        data = dict(form.cleaned_data)
        ids = data.pop("guests")
        guests = list(guest_list(user=self.request.user).filter(pk__in=ids))
        if len(guests) != len(set(ids)):
            raise Http404("no such guest")
        return services.ha_resources_set(guests=guests, user=self.request.user, **data)


class NodeMaintenanceView(ActionView):
    form_class = MaintenanceForm
    redirect_full_page = True
    audit_action = "ha.node_maintenance"

    def get_object(self):
        return get_object_or_404(node_list(user=self.request.user).select_related("cluster"), pk=self.kwargs["ha_node"])

    def perform(self, form):
        return services.ha_node_maintenance(node=self.object, user=self.request.user, enable=form.cleaned_data["enable"])


# -- replication jobs ----------------------------------------------------------------------------

class _ReplicationFormView(ActionView):
    """The replication card's add and edit forms: a post answers the form again (fresh, or with the
    service's field errors on its fields) and the operation panel out of band in the form's slot."""

    progress_oob = True
    http_method_names = ["post", "options"]  # the forms are parts of the HA and storage pages

    def slot(self, form) -> str:
        """The form's operation slot: the HA page's (`ha-operation`) or the card's own."""
        value = None
        if form is not None:
            value = (getattr(form, "cleaned_data", None) or {}).get("slot") or (
                form.data.get("slot") if form.is_bound else form.initial.get("slot"))
        return value if value in dict(REPLICATION_SLOTS) else "replication-operation"

    def get_success_context(self, form, result):
        return super().get_success_context(self.get_form(initial={"slot": self.slot(form)}), result)

    def get_context_data(self, **kwargs):
        form = kwargs.get(self.form_context_name)
        return super().get_context_data(slot=self.slot(form), **kwargs)


class ReplicationCreateView(_ReplicationFormView):
    """POST vmid, target, schedule, rate, comment, disable: a new job for that guest (an operation)."""

    template_name = success_template_name = "ha/partials/replication_form.html"
    form_class = ReplicationJobForm
    context_object_name = "cluster"
    audit_action = "ha.replication_create"
    audit_fields = ("vmid", "target")
    service_error_fields = {"guest": "vmid", "jobnum": "vmid"}

    def get_object(self):
        cluster = cluster_get(user=self.request.user, pk=self.kwargs["ha_cluster"])
        if cluster is None or not can(self.request.user, "ha.view"):
            raise Http404("no such cluster")
        return cluster

    def get_form(self, data=None, files=None, initial=None):
        return ReplicationJobForm(data, cluster=self.object, initial=initial) if data is not None \
            else ReplicationJobForm(cluster=self.object, initial=initial)

    def get_context_data(self, **kwargs):
        return super().get_context_data(candidates=replication_candidates(cluster=self.object), **kwargs)

    def perform(self, form):
        data = dict(form.cleaned_data)
        data.pop("slot", None)
        vmid = data.pop("vmid")
        guest = guest_list(user=self.request.user).filter(cluster=self.object, vmid=vmid) \
            .select_related("cluster", "node").first()
        if guest is None:
            raise ValidationError({"vmid": [f"no guest {vmid} in {self.object}"]})
        return replication.replication_job_create(guest=guest, user=self.request.user, **data)


class ReplicationEditView(_ReplicationFormView):
    """POST schedule, rate, comment, disable: change one job (an operation)."""

    template_name = success_template_name = "ha/partials/replication_edit_form.html"
    form_class = ReplicationEditForm
    context_object_name = "job"
    audit_action = "ha.replication_update"

    def get_object(self):
        job = replication_job_list(user=self.request.user).filter(pk=self.kwargs["ha_job"]).first()
        if job is None:
            raise Http404("no such replication job")
        return job

    def get_form(self, data=None, files=None, initial=None):
        return ReplicationEditForm(data, job=self.object, initial=initial or {}) if data is not None \
            else ReplicationEditForm(job=self.object, initial=initial or {})

    def perform(self, form):
        data = {k: v for k, v in form.cleaned_data.items() if k != "slot"}
        return replication.replication_job_update(job=self.object, user=self.request.user, data=data)


class ReplicationDeleteView(ActionView):
    """POST (asked first through the page's confirm dialog): delete one job (an operation); its
    answer, or the reason it was refused, goes to the card's operation slot."""

    form_class = ReplicationDeleteForm
    http_method_names = ["post", "options"]
    context_object_name = "job"
    audit_action = "ha.replication_delete"
    audit_fields = ("keep",)

    def get_object(self):
        job = replication_job_list(user=self.request.user).filter(pk=self.kwargs["ha_job"]).first()
        if job is None:
            raise Http404("no such replication job")
        return job

    def perform(self, form):
        return replication.replication_job_delete(job=self.object, user=self.request.user,
                                                  keep=form.cleaned_data["keep"])
