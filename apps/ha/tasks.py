"""Celery tasks for HA: thin, each runs an operation body or the refresh of one cluster."""

from celery import shared_task

from apps.operations.services import run_operation

from . import replication, services


@shared_task(name="ha.ha_resource_set")
def ha_resource_set(operation_id: str, **kwargs) -> None:
    run_operation(operation_id, lambda op, reporter: services.run_resource_set(op, reporter, **kwargs))


@shared_task(name="ha.ha_resource_remove")
def ha_resource_remove(operation_id: str, **kwargs) -> None:
    run_operation(operation_id, lambda op, reporter: services.run_resource_remove(op, reporter, **kwargs))


@shared_task(name="ha.ha_resource_move")
def ha_resource_move(operation_id: str, **kwargs) -> None:
    run_operation(operation_id, lambda op, reporter: services.run_resource_move(op, reporter, **kwargs))


@shared_task(name="ha.ha_rule_save")
def ha_rule_save(operation_id: str, **kwargs) -> None:
    run_operation(operation_id, lambda op, reporter: services.run_rule_save(op, reporter, **kwargs))


@shared_task(name="ha.ha_rule_delete")
def ha_rule_delete(operation_id: str, **kwargs) -> None:
    run_operation(operation_id, lambda op, reporter: services.run_rule_delete(op, reporter, **kwargs))


@shared_task(name="ha.ha_node_maintenance")
def ha_node_maintenance(operation_id: str, **kwargs) -> None:
    run_operation(operation_id, lambda op, reporter: services.run_node_maintenance(op, reporter, **kwargs))


@shared_task(name="ha.ha_replication_create")
def ha_replication_create(operation_id: str, **kwargs) -> None:
    run_operation(operation_id, lambda op, reporter: replication.run_create(op, reporter, **kwargs))


@shared_task(name="ha.ha_replication_update")
def ha_replication_update(operation_id: str, **kwargs) -> None:
    run_operation(operation_id, lambda op, reporter: replication.run_update(op, reporter, **kwargs))


@shared_task(name="ha.ha_replication_delete")
def ha_replication_delete(operation_id: str, **kwargs) -> None:
    run_operation(operation_id, lambda op, reporter: replication.run_delete(op, reporter, **kwargs))


@shared_task(name="ha.ha_refresh", ignore_result=True, acks_late=False)
def ha_refresh(cluster_id: int) -> dict | None:
    """Rules, replication jobs and Ceph health of one cluster (2 + nodes calls)."""
    from apps.nodes.models import Cluster

    cluster = Cluster.objects.filter(pk=cluster_id).first()
    if cluster is None:
        return None
    try:
        return services.ha_refresh(cluster=cluster)
    except services.ProxmoxError as exc:  # unreachable: the next beat tries again
        return {"errors": [str(exc)]}


@shared_task(name="ha.ha_refresh_all", ignore_result=True)
def ha_refresh_all() -> int:
    """Beat (HA_REFRESH_INTERVAL): one refresh per reachable cluster."""
    from apps.nodes.models import Cluster

    services.ha_event_prune()
    ids = list(Cluster.objects.exclude(status="unreachable").values_list("pk", flat=True))
    for pk in ids:
        ha_refresh.delay(pk)
    return len(ids)
