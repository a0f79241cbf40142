"""Celery tasks of the firewall: thin, each loads rows and calls a service."""

from celery import shared_task

RETRY_SECONDS = 10
MAX_WAIT_SECONDS = 3 * 3600  # a create that takes longer than this gets no default groups


@shared_task(name="firewall.guest_default_groups", bind=True, ignore_result=True, max_retries=None)
def guest_default_groups(self, operation_id: str, cluster_id: int, vmid: int, kind: str, node: str) -> str:
    """Once the create operation succeeded: the tenant's default groups on the new guest."""
    from .defaults import apply_after_create

    outcome = apply_after_create(operation_id=operation_id, cluster_id=cluster_id, vmid=vmid, kind=kind, node=node)
    if outcome == "waiting" and self.request.retries * RETRY_SECONDS < MAX_WAIT_SECONDS:
        raise self.retry(countdown=RETRY_SECONDS)
    return outcome


@shared_task(name="firewall.ips_alerts_read_all", ignore_result=True)
def ips_alerts_read_all() -> int:
    """Beat: queue an alert read for every cluster whose SSH channel is configured and on (none
    without one), and drop alerts older than IPS_ALERT_RETENTION_DAYS."""
    from .ips import alerts_prune
    from .models import SshChannel

    clusters = list(SshChannel.objects.filter(enabled=True).values_list("cluster_id", flat=True))
    for cluster_id in clusters:
        ips_alerts_read.delay(cluster_id)
    alerts_prune()
    return len(clusters)


@shared_task(name="firewall.ips_alerts_read", ignore_result=True)
def ips_alerts_read(cluster_id: int) -> dict:
    """Read the new Suricata alerts of one cluster's nodes (apps.firewall.ips.alerts_ingest)."""
    from .ips import alerts_ingest

    result = alerts_ingest(cluster_id)
    return {"stored": result.stored, "seen": result.seen, "unmatched": result.unmatched, "nodes": result.nodes,
            "skipped": result.skipped}
