"""New guests get their tenant's default security groups.

A tenant chooses groups (its own or shared ones) per cluster (`DefaultGroup`). When the portal
creates a guest for that tenant, the create extension queues `firewall.guest_default_groups` from
the create's transaction (on commit); the task waits for the create operation to succeed, then
adds one group rule per default group at the end of the guest's rules (never twice), audited as
the user who created the guest. A failed or cancelled create gets nothing.
"""

from __future__ import annotations

from django.core.exceptions import ValidationError
from django.db import transaction

from apps.core.models import AuditResult
from apps.core.services import audit_log
from apps.permissions.policy import as_actor, check
from apps.proxmox import GuestRef
from apps.proxmox import firewall as pve_fw

from .models import DefaultGroup
from .services import FirewallRefused, _Call, groups_read, visible_name


def default_groups(*, user, cluster) -> list[str]:
    actor = as_actor(user)
    if actor.tenant_id is None:
        return []
    return list(DefaultGroup.objects.filter(tenant_id=actor.tenant_id, cluster=cluster).values_list("group", flat=True))


def default_groups_set(*, user, cluster, groups: list[str]) -> list[str]:
    """Replace the caller's tenant's default groups on `cluster` (each must be a group they may use)."""
    actor = as_actor(user)
    check(user, "firewall.edit", cluster)
    if actor.tenant_id is None:
        raise ValidationError({"groups": ["default groups belong to a tenant; act in one of your tenants"]})
    known = {g["group"] for g in groups_read(user=user, cluster=cluster)}
    wanted = list(dict.fromkeys(str(g).strip() for g in groups if str(g).strip()))
    unknown = [g for g in wanted if g not in known or not visible_name(user, g)]
    if unknown:
        raise ValidationError({"groups": [f"no such security group '{g}'" for g in unknown]})
    with transaction.atomic():
        DefaultGroup.objects.filter(tenant_id=actor.tenant_id, cluster=cluster).exclude(group__in=wanted).delete()
        for group in wanted:
            DefaultGroup.objects.get_or_create(tenant_id=actor.tenant_id, cluster=cluster, group=group)
        audit_log(user=actor.user, action="firewall.default_groups", target=cluster, result=AuditResult.SUCCESS,
                  detail={"groups": wanted}, tenant_id=actor.tenant_id)
    return wanted


class CreateExtension:
    """apps.guests' create extension: no wizard field; queues the default groups on commit."""

    def form_field(self, *, user, kind):
        return None

    def plan(self, *, user, cluster, data, kind, errors):
        return None

    def reserve(self, *, operation, plan, vmid, node):
        cluster_id = plan.get("cluster_id") or operation.cluster_id
        if not operation.tenant_id or not DefaultGroup.objects.filter(tenant_id=operation.tenant_id,
                                                                      cluster_id=cluster_id).exists():
            return
        from .tasks import guest_default_groups

        args = [str(operation.pk), cluster_id, int(vmid), plan.get("type") or "qemu", node]
        transaction.on_commit(lambda: guest_default_groups.apply_async(args=args, countdown=5))


def apply_after_create(*, operation_id: str, cluster_id: int, vmid: int, kind: str, node: str) -> str:
    """'waiting' while the create runs; else what was done ('added: ...', 'nothing', 'create failed')."""
    from apps.guests.models import Guest
    from apps.operations.choices import FINAL_STATUSES, OperationStatus
    from apps.operations.models import Operation

    operation = Operation.objects.select_related("created_by").filter(pk=operation_id).first()
    if operation is None:
        return "operation gone"
    if operation.status not in FINAL_STATUSES:
        return "waiting"
    if operation.status != OperationStatus.SUCCEEDED:
        return "create failed"
    wanted = list(DefaultGroup.objects.filter(tenant_id=operation.tenant_id, cluster_id=cluster_id)
                  .values_list("group", flat=True))
    guest = Guest.objects.select_related("node", "cluster").filter(cluster_id=cluster_id, vmid=vmid).first()
    if guest is not None and guest.node_id is not None:
        node, kind = guest.node.name, guest.type
    from apps.nodes.models import Cluster

    cluster = Cluster.objects.get(pk=cluster_id)
    level = pve_fw.Level.of_guest(GuestRef(node, kind, vmid))
    try:
        with _Call(cluster, f"add the default security groups to guest {vmid}") as client:
            rules, _ = pve_fw.rules(client, level)
            present = {r["action"] for r in rules if r.get("type") == "group"}
            added = [g for g in wanted if g not in present]
            for offset, group in enumerate(added):
                pve_fw.create_rule(client, level, {"type": "group", "action": group, "enable": 1,
                                                   "comment": "tenant default"}, pos=len(rules) + offset)
    except (FirewallRefused, ValidationError) as exc:
        audit_log(user=operation.created_by, action="firewall.default_groups_apply", target=guest or str(vmid),
                  result=AuditResult.FAILURE, detail={"groups": wanted, "error": str(exc)[:500]},
                  tenant_id=operation.tenant_id)
        return f"failed: {exc}"
    audit_log(user=operation.created_by, action="firewall.default_groups_apply", target=guest or str(vmid),
              result=AuditResult.SUCCESS, detail={"groups": added}, tenant_id=operation.tenant_id)
    return f"added: {', '.join(added)}" if added else "nothing"
