"""Queue a migration: what the portal can check without calling Proxmox."""

from __future__ import annotations

from django.core.exceptions import ValidationError

from apps.operations.choices import ACTIVE_STATUSES
from apps.operations.models import Operation
from apps.operations.services import operation_create
from apps.permissions.policy import check

from ...models import Guest


def guest_migrate(*, guest: Guest, user, target: str) -> Operation:
    """Queue the migration of `guest` to node `target` (kind `guest.migrate`).

    Checks what the portal knows without calling Proxmox: an operator, a known source node, a
    target that is another online node of the same cluster. The worker re-runs Proxmox's
    precheck before it starts. Raises PermissionDenied or ValidationError (field `target`);
    nothing is queued then."""
    from apps.nodes.models import Node

    check(user, "guest.migrate", guest)  # placement is the operators' (apps.permissions.policy.ACTIONS)
    if guest.node_id is None:
        raise ValidationError({"node": [f"the node of {guest} is not known yet; wait for the next sync"]})
    target = (target or "").strip()
    node = Node.objects.filter(cluster_id=guest.cluster_id, name=target).first()
    if not target:
        raise ValidationError({"target": ["choose the node to migrate to"]})
    if node is None:
        raise ValidationError({"target": [f"'{target}' is not a node of cluster {guest.cluster}"]})
    running = Operation.objects.filter(kind="guest.migrate", target_type=guest._meta.label_lower,
                                       target_id=str(guest.pk), status__in=ACTIVE_STATUSES).first()
    # Checked before "already on": mid-migration the inventory may show either node.
    if running is not None or guest.lock == "migrate":
        to = running.task_kwargs.get("target") if running is not None else None
        where = f" to {to}" if to else ""
        raise ValidationError({"target": [f"{guest.kind} {guest} is being migrated{where}; "
                                          "wait until that migration ends"]})
    if node.pk == guest.node_id:
        raise ValidationError({"target": [f"{guest.kind} {guest} is already on {target}"]})
    if not node.online or node.status != "online":
        raise ValidationError({"target": [f"node {target} is offline"]})
    return operation_create(kind="guest.migrate", user=user, task_name="guests.guest_migrate",
                            kwargs={"guest_id": guest.pk, "target": target}, target=guest,
                            cluster_id=guest.cluster_id,
                            title=f"Migrate {guest.kind} {guest} from {guest.node.name} to {target}")
