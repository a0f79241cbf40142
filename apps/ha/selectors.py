"""Reads for HA, each scoped by the policy: operators and auditors see every cluster's HA; a
tenant sees the HA resources, events and replication jobs of their own guests only."""

from __future__ import annotations

from django.db.models import QuerySet

from apps.nodes.models import Cluster
from apps.nodes.selectors import cluster_list
from apps.permissions.policy import can, visible

from .models import HaClusterState, HaEvent, HaResource, HaRule, ReplicationJob


def ha_page_visible(*, user, cluster_id, manage: bool = False) -> bool:
    """May `user` watch the HA page of this cluster (`haview-<id>`; `ha-<id>` with manage=True)?"""
    return can(user, "ha.manage" if manage else "ha.view") and cluster_list(user=user).filter(pk=cluster_id).exists()


def ha_clusters(*, user) -> list[Cluster]:
    """Clusters whose HA page the user may open, each with its HaClusterState as `.ha_state`."""
    if not can(user, "ha.view"):
        return []
    clusters = list(cluster_list(user=user).order_by("name"))
    states = {s.cluster_id: s for s in HaClusterState.objects.filter(cluster__in=clusters)}
    for cluster in clusters:
        cluster.ha_state = states.get(cluster.pk)
    return clusters


def ha_resource_list(*, user) -> QuerySet[HaResource]:
    return visible(user, HaResource.objects.select_related("cluster", "guest"))


def ha_resource_for_guest(*, user, guest) -> HaResource | None:
    return ha_resource_list(user=user).filter(cluster_id=guest.cluster_id, vmid=guest.vmid).first()


def ha_rule_list(*, user) -> QuerySet[HaRule]:
    """Rules name other tenants' guests: operators and auditors only (no scope for tenants)."""
    return visible(user, HaRule.objects.select_related("cluster"))


def ha_event_list(*, user) -> QuerySet[HaEvent]:
    return visible(user, HaEvent.objects.select_related("cluster", "guest"))


def replication_job_list(*, user) -> QuerySet[ReplicationJob]:
    return visible(user, ReplicationJob.objects.select_related("cluster", "guest"))


def ceph_health_by_cluster(*, user, cluster_ids) -> dict[int, dict]:
    """Ceph health (as the HA sync stored it) of those clusters with Ceph, keyed by cluster id, with
    `cluster`, `up_pct` and `used_pct` added; only for users who may watch the HA page (the same
    rule: `ha.view` on a visible cluster). One query."""
    if not can(user, "ha.view"):
        return {}
    states = HaClusterState.objects.filter(
        cluster__in=cluster_list(user=user).filter(pk__in=cluster_ids), ceph__isnull=False,
    ).select_related("cluster").order_by("cluster__name")
    result = {}
    for state in states:
        ceph = dict(state.ceph or {})
        if not ceph:
            continue
        ceph["cluster"] = state.cluster
        ceph["up_pct"] = round(100 * (ceph.get("osds_up") or 0) / ceph["osds"]) if ceph.get("osds") else 0
        ceph["used_pct"] = (round(100 * (ceph.get("bytes_used") or 0) / ceph["bytes_total"])
                            if ceph.get("bytes_total") else 0)
        result[state.cluster_id] = ceph
    return result


def replication_jobs_for_storage(*, user, storage) -> QuerySet[ReplicationJob]:
    """Replication jobs that copy this (local ZFS) storage's volumes: jobs of guests whose source
    node is the storage's node (or one of its nodes). Replication needs ZFS, so a job from that node
    replicates the guest's volumes on its ZFS storage. Scoped: a tenant sees its own guests' jobs."""
    nodes = [storage.node.name] if storage.node_id else list(storage.nodes or [])
    return replication_job_list(user=user).filter(cluster_id=storage.cluster_id, source__in=nodes).order_by("job_id")


def replication_candidates(*, cluster, nodes=None, limit: int = 200) -> list:
    """Guests a new replication job could copy (the add form's suggestions; the service checks the
    chosen guest itself): not templates, with a disk on a ZFS storage of the cluster as far as we
    know (a config we read, what the HA refresh read of an HA guest, a job it already has), on
    `nodes` when given. One query. For those who may manage HA (no tenant scope)."""
    from django.db.models import Q
    from django.db.models.expressions import RawSQL

    from apps.guests.models import Guest
    from apps.storage.models import Storage

    zfs = sorted(set(Storage.objects.filter(cluster=cluster, type="zfspool").values_list("storage", flat=True)))
    if not zfs:
        return []
    table = Guest._meta.db_table
    config_on_zfs = RawSQL(
        f"SELECT g.id FROM {table} g WHERE g.cluster_id = %s AND EXISTS (SELECT 1 FROM jsonb_each_text("
        "CASE WHEN jsonb_typeof(g.config) = 'object' THEN g.config ELSE '{}'::jsonb END) AS d "
        "WHERE d.value LIKE ANY(%s))", [cluster.pk, [f"{name}:%" for name in zfs]])
    replicated = ReplicationJob.objects.filter(cluster=cluster).values("vmid")
    guests = Guest.objects.filter(cluster=cluster, template=False).filter(
        Q(pk__in=config_on_zfs) | Q(ha_resources__storages__overlap=zfs) | Q(vmid__in=replicated))
    if nodes is not None:
        guests = guests.filter(node__name__in=nodes)
    return list(guests.select_related("node").distinct().order_by("vmid")[:limit])
