"""`{% node_gpus node %}`: the GPUs section of a node's detail page, scoped to the viewer."""

from django import template

from ..selectors import node_gpus as select_node_gpus

register = template.Library()


@register.inclusion_tag("gpus/partials/node_gpus.html", takes_context=True)
def node_gpus(context, node):
    request = context.get("request")
    return {"node": node, "gpus": select_node_gpus(user=getattr(request, "user", None), node=node)}


@register.inclusion_tag("gpus/partials/guest_gpus.html", takes_context=True)
def gpu_panel(context, guest):
    """`{% gpu_panel guest %}`: the guest's GPUs, scoped to the viewer, with add/remove forms."""
    from apps.permissions.policy import can

    from ..attach import offered_profiles
    from ..forms import GpuAttachForm
    from ..selectors import gpu_allocation_list

    request = context.get("request")
    actor = getattr(request, "actor", None) or getattr(request, "user", None)
    allocations = list(gpu_allocation_list(user=actor).filter(cluster_id=guest.cluster_id, vmid=guest.vmid))
    may_config = can(actor, "guest.config", guest)
    offered = may_config and offered_profiles(user=actor, cluster_id=guest.cluster_id, kind=guest.type).exists()
    return {"guest": guest, "allocations": allocations, "may_config": may_config, "offered": offered,
            "form": GpuAttachForm(user=actor, guest=guest) if offered else None,
            "request": request, "csrf_token": context.get("csrf_token")}
