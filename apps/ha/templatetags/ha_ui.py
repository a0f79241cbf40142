"""HA template tags: `{% ha_panel guest %}` (a guest page's HA section, as the viewer's audience sees
it, live), `{% ha_dashboard_stat %}` and `{% replication_editor jobs as ed %}` (the replication
card's editor: HA page and ZFS storage pages)."""

from django import template

register = template.Library()


@register.inclusion_tag("ha/partials/guest_ha.html", takes_context=True)
def ha_panel(context, guest):
    """The panel as the viewer's audience sees it (apps.ha.live: manage, view or tenant), and the
    page's live groups gain that audience's `haguest-<pk>.<audience>`, so the panel follows the
    guest's HA state without a reload (base.html opens the socket after the content is rendered)."""
    from ..live import guest_audience, guest_group, guest_panel_context

    request = context.get("request")
    actor = getattr(request, "actor", None) or getattr(request, "user", None)
    audience = guest_audience(actor, guest)
    groups = context.get("live_groups")
    if isinstance(groups, list) and guest_group(guest.pk, audience) not in groups:
        groups.append(guest_group(guest.pk, audience))
    return {**guest_panel_context(guest, audience), "request": request, "csrf_token": context.get("csrf_token")}


@register.inclusion_tag("ha/partials/dashboard_stat.html", takes_context=True)
def ha_dashboard_stat(context):
    """`{% ha_dashboard_stat %}`: HA guests running out of all, and any in trouble (operators, auditors)."""
    from apps.permissions.policy import can

    from ..selectors import ha_clusters, ha_resource_list

    request = context.get("request")
    actor = getattr(request, "actor", None) or getattr(request, "user", None)
    if not can(actor, "ha.view"):
        return {"show": False}
    clusters = ha_clusters(user=actor)
    states = [c.ha_state for c in clusters if c.ha_state is not None]
    resources = list(ha_resource_list(user=actor).filter(cluster__in=clusters).values_list("state", flat=True))
    trouble = sum(1 for s in resources if s in ("fence", "recovery", "error", "freeze"))
    return {"show": bool(states), "total": len(resources), "started": resources.count("started"),
            "trouble": trouble, "no_quorum": sum(1 for s in states if s.quorate is False)}


@register.simple_tag(takes_context=True)
def replication_editor(context, jobs):
    """`{% replication_editor jobs as ed %}`: what the replication card needs around its jobs, from
    the page it is in: the HA page's cluster panel (`panel`, `cluster` and `may_manage` in the
    context, pushes included) or a ZFS storage's page (`storage`, the request's user). Those who may
    manage HA get the add form (with the cluster's ZFS guests as suggestions), an edit form on each
    job and the slot where operations show."""
    from apps.permissions.policy import can

    from ..forms import ReplicationEditForm, ReplicationJobForm
    from ..selectors import replication_candidates

    panel = bool(context.get("panel"))
    storage = None if panel else (context.get("storage") or context.get("object"))
    cluster = context.get("cluster") if panel else getattr(storage, "cluster", None)
    if cluster is None:
        return {"may_manage": False}
    if "may_manage" in context:
        may_manage = bool(context["may_manage"])
    else:
        request = context.get("request")
        actor = getattr(request, "actor", None) or getattr(request, "user", None)
        may_manage = can(actor, "ha.manage", cluster)
    slot = "ha-operation" if panel else "replication-operation"
    out = {"cluster": cluster, "may_manage": may_manage, "slot": slot}
    if may_manage:
        nodes = None
        if storage is not None:
            nodes = [storage.node.name] if storage.node_id else list(storage.nodes or [])
        out["add_form"] = ReplicationJobForm(cluster=cluster, initial={"slot": slot})
        out["candidates"] = replication_candidates(cluster=cluster, nodes=nodes)
        for job in jobs or []:
            job.edit_form = ReplicationEditForm(job=job, initial={"slot": slot})
    return out
