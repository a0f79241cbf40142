"""`{% node_gpus node %}`: the GPUs section of a node's detail page, scoped to the viewer."""

from django import template

from ..selectors import node_gpus as select_node_gpus

register = template.Library()


@register.inclusion_tag("gpus/partials/node_gpus.html", takes_context=True)
def node_gpus(context, node):
    request = context.get("request")
    return {"node": node, "gpus": select_node_gpus(user=getattr(request, "user", None), node=node)}
