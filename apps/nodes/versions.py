"""Each node's Proxmox VE version (GET /nodes/{node}/version) and its bridges (GET
/nodes/{node}/network: the create wizard's NIC choices), recorded off the sync cycle.

The sync cycle keeps its three calls; its nodes handler only queues this refresh when an online
node has no version yet (it appeared, or was offline when last asked) or was last read more than
VERSION_INTERVAL ago (an upgrade or a new bridge is rare, so two calls per node every 10 minutes
are plenty). Version-dependent behaviour itself is decided in
apps.proxmox.versions from the recorded value.
"""

from __future__ import annotations

import logging
from datetime import timedelta

from django.db import transaction
from django.utils import timezone

from apps.proxmox import ProxmoxError, ProxmoxNotFound
from apps.proxmox import nodes as pve_nodes
from apps.proxmox import versions

from . import presence
from .choices import NodeStatus
from .models import Cluster, Node

logger = logging.getLogger(__name__)

VERSION_INTERVAL = 600  # seconds between version reads of one node
QUEUED_TTL = 60


def versions_due(nodes: list[Node], now=None) -> bool:
    """True when an online node has no version yet, or its last read is older than VERSION_INTERVAL."""
    now = now or timezone.now()
    return any(n.status == NodeStatus.ONLINE and (
        not n.pve_version or n.version_checked_at is None
        or now - n.version_checked_at > timedelta(seconds=VERSION_INTERVAL)) for n in nodes)


def enqueue_versions(cluster_id: int) -> bool:
    """Queue one `nodes.node_versions_refresh` for the cluster (deduplicated); True when queued."""
    if not presence.mark_queued("versions", cluster_id, QUEUED_TTL):
        return False
    from .tasks import node_versions_refresh

    transaction.on_commit(lambda: node_versions_refresh.delay(cluster_id))
    return True


def refresh_versions(cluster_id: int) -> dict[str, str]:
    """Read the version of every online node that is due (one call each), save it, and set the
    cluster's version to the oldest one (what limits the cluster). A node that does not answer keeps
    its last value. Returns {node: version} of the nodes read."""
    from .services import cluster_client

    cluster = Cluster.objects.filter(pk=cluster_id).first()
    if cluster is None:
        return {}
    now = timezone.now()
    due = [n for n in Node.objects.filter(cluster=cluster, status=NodeStatus.ONLINE) if versions_due([n], now)]
    read: dict[str, str] = {}
    bridges: dict[str, list[str]] = {}  # the NIC bridge choices of the create wizard
    if due:
        with cluster_client(cluster) as client:
            for node in due:
                try:
                    bridges[node.name] = pve_nodes.bridges(client, node.name)
                    read[node.name] = pve_nodes.version(client, node.name)["version"]
                except ProxmoxNotFound:
                    # No per-node version here: the answering node's GET /version stands for the cluster.
                    read.setdefault("", pve_nodes.version(client)["version"])
                    read[node.name] = read[""]
                except ProxmoxError as exc:
                    logger.info("version of %s/%s not read: %s", cluster.name, node.name, exc)
            read.pop("", None)
    for node in due:
        if node.name in read:
            Node.objects.filter(pk=node.pk).update(pve_version=read[node.name][:50], version_checked_at=now,
                                                   bridges=bridges.get(node.name, node.bridges))
    known = [v for v in Node.objects.filter(cluster=cluster).values_list("pve_version", flat=True) if v]
    if known:
        oldest = min(known, key=lambda v: versions.parse(v) or ())
        if oldest != cluster.pve_version:
            Cluster.objects.filter(pk=cluster.pk).update(pve_version=oldest)
    return read
