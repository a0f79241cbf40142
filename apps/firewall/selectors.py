"""Lookups of the objects a firewall page or API call addresses, scoped to what `user` may see
(None: not theirs to see, callers answer 404)."""

from __future__ import annotations

from apps.guests.selectors import guest_get
from apps.nodes.selectors import cluster_get, node_list

from .services import Target


def guest_target(*, user, pk) -> Target | None:
    guest = guest_get(user=user, pk=pk)
    return None if guest is None else Target("guest", guest.cluster, guest=guest)


def cluster_target(*, user, pk, group: str | None = None) -> Target | None:
    cluster = cluster_get(user=user, pk=pk)
    if cluster is None:
        return None
    return Target("group" if group is not None else "cluster", cluster, group=group)


def node_target(*, user, pk) -> Target | None:
    try:
        node = node_list(user=user).select_related("cluster").filter(pk=int(pk)).first()
    except (TypeError, ValueError):
        return None
    return None if node is None else Target("node", node.cluster, node=node)
