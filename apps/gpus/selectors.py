"""Reads, always scoped to what `user` may see (operators: everything; others: nothing until
tenancy lands; apps.core.scoping decides)."""

from __future__ import annotations

from dataclasses import dataclass, field

from django.db.models import Prefetch, QuerySet

from apps.core.scoping import scope_queryset
from apps.nodes.models import Cluster, Node

from .models import GpuAllocation, GpuDevice, GpuInventory, GpuProfile, MdevType, PciMapping


def _devices(holders: QuerySet[GpuAllocation] | None = None) -> QuerySet[GpuDevice]:
    """`holders`: the allocations to show on each card (default all: operators' live pushes)."""
    holders = GpuAllocation.objects.all() if holders is None else holders
    return GpuDevice.objects.select_related("cluster", "node").prefetch_related(
        Prefetch("mdev_types", queryset=MdevType.objects.order_by("type")),
        Prefetch("mappings", queryset=PciMapping.objects.only("pk", "mapping_id", "cluster_id")),
        Prefetch("allocations", queryset=holders.select_related("profile", "tenant").order_by("vmid"),
                 to_attr="holders"))


def gpu_profile_list(*, user) -> QuerySet[GpuProfile]:
    return scope_queryset(GpuProfile.objects.select_related("cluster").prefetch_related("devices__node", "tenants"),
                          user).distinct()


def gpu_allocation_list(*, user) -> QuerySet[GpuAllocation]:
    return scope_queryset(GpuAllocation.objects.select_related("profile", "device__node", "cluster", "tenant"), user)


def gpu_device_list(*, user) -> QuerySet[GpuDevice]:
    return scope_queryset(_devices(scope_queryset(GpuAllocation.objects.all(), user)), user)


def pci_mapping_list(*, user) -> QuerySet[PciMapping]:
    return scope_queryset(PciMapping.objects.select_related("cluster").prefetch_related(
        Prefetch("devices", queryset=GpuDevice.objects.select_related("node"))), user)


def node_gpus(*, user, node: Node) -> list[GpuDevice]:
    return list(gpu_device_list(user=user).filter(node=node))


@dataclass
class NodeColumn:
    node: Node
    gpus: list[GpuDevice] = field(default_factory=list)


@dataclass
class ClusterMap:
    cluster: Cluster
    inventory: GpuInventory | None
    columns: list[NodeColumn]

    @property
    def gpu_count(self) -> int:
        return sum(len(c.gpus) for c in self.columns)


def _build(clusters: list[Cluster], holders: QuerySet[GpuAllocation] | None = None) -> list[ClusterMap]:
    """One column per node (nodes without GPUs too), in a fixed number of queries."""
    ids = [c.pk for c in clusters]
    inventories = {i.cluster_id: i for i in GpuInventory.objects.filter(cluster_id__in=ids)}
    columns: dict[int, NodeColumn] = {}
    by_cluster: dict[int, list[NodeColumn]] = {pk: [] for pk in ids}
    for node in Node.objects.filter(cluster_id__in=ids).order_by("name"):
        columns[node.pk] = NodeColumn(node=node)
        by_cluster[node.cluster_id].append(columns[node.pk])
    for gpu in _devices(holders).filter(cluster_id__in=ids).order_by("pci_id"):
        if gpu.node_id in columns:
            columns[gpu.node_id].gpus.append(gpu)
    return [ClusterMap(cluster=c, inventory=inventories.get(c.pk), columns=by_cluster[c.pk]) for c in clusters]


def gpu_map(*, user, cluster_id: int | None = None) -> list[ClusterMap]:
    """The GPU map of every cluster the user may see (or only `cluster_id`)."""
    clusters = scope_queryset(Cluster.objects.order_by("name"), user)
    if cluster_id is not None:
        clusters = clusters.filter(pk=cluster_id)
    # Each card shows only the holders the viewer may see (a tenant: its own guests).
    return _build(list(clusters), scope_queryset(GpuAllocation.objects.all(), user))


def gpu_map_for_cluster(*, cluster: Cluster) -> ClusterMap:
    """For live pushes to `gpus-<cluster id>` (operators and auditors only: every holder shows)."""
    return _build([cluster])[0]
