"""Writes for HA: every change to Proxmox is an Operation run by a Celery worker, never inside a
web request's transaction. The request only validates (field errors name the field), checks the
policy (`ha.manage`) and queues; the worker calls Proxmox through apps.proxmox.ha and refreshes
our copy. Proxmox's refusals (no quorum, infeasible rule) fail the operation with its words.

Also the HA refresh: rules, replication jobs and Ceph health, a few calls per cluster per
interval (beat) and after each HA write; never per viewer.
"""

from __future__ import annotations

import logging
import re
import time
from datetime import UTC, datetime

from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from apps.operations.clients import client_for
from apps.operations.services import OperationReporter, operation_create, poll_interval
from apps.permissions.policy import check
from apps.proxmox import ProxmoxError
from apps.proxmox import ha as pve_ha

from .choices import Affinity, ResourceState, RuleType
from .models import HaClusterState, HaEvent, HaResource, HaRule, ReplicationJob

logger = logging.getLogger(__name__)

RULE_ID = re.compile(r"^[a-z][a-z0-9_\-]{1,99}$")
NODE_DRAIN_TIMEOUT = 900.0  # real seconds a drain waits for the CRM to move everything


# -- resources ---------------------------------------------------------------------------------

def _resource_options(*, state, max_restart, max_relocate, failback, comment) -> dict:
    errors = {}
    if state not in ResourceState.values:
        errors["state"] = [f"choose one of {', '.join(ResourceState.values)}"]
    for name, value in (("max_restart", max_restart), ("max_relocate", max_relocate)):
        if value is not None and (not isinstance(value, int) or value < 0 or value > 10):
            errors[name] = ["a whole number from 0 to 10"]
    if comment and len(comment) > 4096:
        errors["comment"] = ["at most 4096 characters"]
    if errors:
        raise ValidationError(errors)
    return {"state": state, "max_restart": max_restart, "max_relocate": max_relocate,
            "failback": None if failback is None else bool(failback), "comment": comment or ""}


def _guest_sid(guest) -> str:
    return pve_ha.sid_for(guest.type, guest.vmid)


def ha_resources_set(*, guests: list, user, state: str = "started", max_restart: int | None = 1,
                     max_relocate: int | None = 1, failback: bool | None = True, comment: str = ""):
    """Put `guests` (one cluster) under HA, or change their HA options: one operation for all.
    Raises NotVisible/Denied (policy), ValidationError (field map) before anything is queued."""
    if not guests:
        raise ValidationError({"guests": ["choose at least one guest"]})
    clusters = {g.cluster_id for g in guests}
    if len(clusters) > 1:
        raise ValidationError({"guests": ["choose guests of one cluster"]})
    for guest in guests:
        check(user, "ha.manage", guest)
        if guest.template:
            raise ValidationError({"guests": [f"{guest} is a template: templates cannot be HA resources"]})
    options = _resource_options(state=state, max_restart=max_restart, max_relocate=max_relocate, failback=failback,
                                comment=comment)
    sids = [_guest_sid(g) for g in guests]
    target = guests[0] if len(guests) == 1 else ("nodes.cluster", guests[0].cluster_id, f"{len(guests)} guests")
    with transaction.atomic():
        return operation_create(kind="ha.resource_set", user=user, task_name="ha.ha_resource_set",
                                kwargs={"sids": sids, **options}, target=target, cluster_id=guests[0].cluster_id,
                                title=f"HA {options['state']}: {', '.join(sids)}")


def ha_resource_remove(*, guest, user):
    """Take a guest out of HA (the guest itself keeps running)."""
    check(user, "ha.manage", guest)
    sid = _guest_sid(guest)
    if not HaResource.objects.filter(cluster_id=guest.cluster_id, sid=sid).exists():
        raise ValidationError({"guest": [f"{guest} is not an HA resource"]})
    with transaction.atomic():
        return operation_create(kind="ha.resource_remove", user=user, task_name="ha.ha_resource_remove",
                                kwargs={"sid": sid}, target=guest, cluster_id=guest.cluster_id,
                                title=f"Remove {sid} from HA")


def ha_resource_move(*, guest, user, node: str, relocate: bool = False):
    """Ask the CRM to migrate (or relocate) an HA guest to `node`."""
    check(user, "ha.manage", guest)
    sid = _guest_sid(guest)
    if not HaResource.objects.filter(cluster_id=guest.cluster_id, sid=sid).exists():
        raise ValidationError({"guest": [f"{guest} is not an HA resource"]})
    _node_online(guest.cluster, node, field="node")
    if guest.node_id and guest.node.name == node:
        raise ValidationError({"node": [f"{guest} already runs on {node}"]})
    with transaction.atomic():
        return operation_create(kind="ha.resource_move", user=user, task_name="ha.ha_resource_move",
                                kwargs={"sid": sid, "node": node, "relocate": relocate}, target=guest,
                                cluster_id=guest.cluster_id,
                                title=f"HA {'relocate' if relocate else 'migrate'} {sid} to {node}")


def run_resource_set(operation, reporter: OperationReporter, *, sids, state, max_restart, max_relocate, failback,
                     comment) -> dict:
    known = set(HaResource.objects.filter(cluster_id=operation.cluster_id).values_list("sid", flat=True))
    with client_for(operation.cluster_id) as client:
        for n, sid in enumerate(sids, start=1):
            opts = {"state": state, "max_restart": max_restart, "max_relocate": max_relocate, "failback": failback,
                    "comment": comment or None}
            if sid in known:
                pve_ha.resource_update(client, sid, **opts, delete=() if comment else ("comment",))
                reporter.event(f"{sid}: HA options set (state {state})", progress=100 * n / len(sids))
            else:
                pve_ha.resource_add(client, sid, **opts)
                reporter.event(f"{sid}: now managed by HA (state {state})", progress=100 * n / len(sids))
    _request_sync(operation.cluster_id)
    return {"sids": sids}


def run_resource_remove(operation, reporter, *, sid) -> dict:
    with client_for(operation.cluster_id) as client:
        pve_ha.resource_remove(client, sid)
    reporter.event(f"{sid} is no longer managed by HA")
    _request_sync(operation.cluster_id)
    return {"sid": sid}


def run_resource_move(operation, reporter, *, sid, node, relocate) -> dict:
    with client_for(operation.cluster_id) as client:
        answer = pve_ha.resource_move(client, sid, node, relocate=relocate)
        reporter.event(f"The CRM accepted: {sid} {'relocates' if relocate else 'migrates'} to {node}", progress=10)
        _wait(client, reporter, lambda st: (s := st.services.get(sid)) is not None and s.node == node
              and (s.crm_state or s.state) in ("started", "stopped", "error"),
              what=f"{sid} to arrive on {node}")
    _request_sync(operation.cluster_id)
    return {"sid": sid, "node": node, **({"proxmox": answer} if answer else {})}


# -- rules -------------------------------------------------------------------------------------

def _parse_priorities(value) -> dict[str, int]:
    if isinstance(value, dict):
        return {str(k): int(v) for k, v in value.items()}
    return pve_ha.parse_nodes(value or "")


def rule_validate(*, cluster, data: dict, existing: HaRule | None = None) -> dict:
    """The rule as Proxmox will get it, or ValidationError naming each bad field. Checks what
    Proxmox checks (names, unmanaged resources, unknown nodes, a resource in two node-affinity
    rules, resource affinity needing two resources) so a mistake is a field error, not a failed task."""
    errors: dict[str, list[str]] = {}
    rule = (existing.rule if existing else str(data.get("rule") or "").strip())
    rtype = existing.type if existing else data.get("type")
    if not existing:
        if not RULE_ID.match(rule):
            errors["rule"] = ["2-100 characters: lowercase letters, digits, - and _, starting with a letter"]
        elif HaRule.objects.filter(cluster=cluster, rule=rule).exists():
            errors["rule"] = [f"a rule named {rule} already exists"]
        if rtype not in RuleType.values:
            errors["type"] = [f"choose one of {', '.join(RuleType.values)}"]
    resources = data.get("resources") or []
    if isinstance(resources, str):
        resources = [s for s in re.split(r"[,;\s]+", resources) if s]
    managed = set(HaResource.objects.filter(cluster=cluster).values_list("sid", flat=True))
    if not resources:
        errors["resources"] = ["choose at least one HA resource"]
    elif unmanaged := sorted(set(resources) - managed):
        errors["resources"] = [f"not HA resources of this cluster: {', '.join(unmanaged)}"]
    out = {"rule": rule, "type": rtype, "resources": sorted(set(resources)), "comment": (data.get("comment") or "")[:4096],
           "disable": bool(data.get("disable"))}
    if rtype == RuleType.NODE_AFFINITY:
        try:
            nodes = _parse_priorities(data.get("nodes"))
        except (TypeError, ValueError):
            nodes, errors["nodes"] = {}, ["write node:priority pairs, e.g. pve1:2,pve2:1,pve3"]
        known = set(cluster.nodes.values_list("name", flat=True))
        if not nodes and "nodes" not in errors:
            errors["nodes"] = ["choose at least one node"]
        elif unknown := sorted(set(nodes) - known):
            errors["nodes"] = [f"no such node in {cluster}: {', '.join(unknown)}"]
        elif any(p < 0 or p > 1000 for p in nodes.values()):
            errors["nodes"] = ["priorities are whole numbers from 0 to 1000"]
        others = HaRule.objects.filter(cluster=cluster, type=RuleType.NODE_AFFINITY, disable=False)
        if existing:
            others = others.exclude(pk=existing.pk)
        taken = {sid: r.rule for r in others for sid in r.resources}
        if clash := sorted(s for s in resources if s in taken):
            errors.setdefault("resources", []).append(
                "already in another node-affinity rule: " + ", ".join(f"{s} ({taken[s]})" for s in clash))
        out.update(nodes=nodes, strict=bool(data.get("strict")))
    elif rtype == RuleType.RESOURCE_AFFINITY:
        affinity = data.get("affinity")
        if affinity not in Affinity.values:
            errors["affinity"] = ["choose positive (keep together) or negative (keep apart)"]
        if len(set(resources)) < 2 and "resources" not in errors:
            errors["resources"] = ["a resource-affinity rule needs at least two resources"]
        out["affinity"] = affinity
    if errors:
        raise ValidationError(errors)
    return out


def ha_rule_save(*, cluster, user, data: dict, existing: HaRule | None = None):
    """Create or update a rule (validated first, see rule_validate); an operation."""
    check(user, "ha.manage", cluster)
    rule = rule_validate(cluster=cluster, data=data, existing=existing)
    with transaction.atomic():
        return operation_create(kind="ha.rule_save", user=user, task_name="ha.ha_rule_save",
                                kwargs={"rule": rule, "update": existing is not None},
                                target=("nodes.cluster", cluster.pk, f"{cluster} / {rule['rule']}"),
                                cluster_id=cluster.pk, title=f"{'Update' if existing else 'Create'} HA rule {rule['rule']}")


def ha_rule_delete(*, rule: HaRule, user):
    check(user, "ha.manage", rule.cluster)
    with transaction.atomic():
        return operation_create(kind="ha.rule_delete", user=user, task_name="ha.ha_rule_delete",
                                kwargs={"rule": rule.rule},
                                target=("nodes.cluster", rule.cluster_id, f"{rule.cluster} / {rule.rule}"),
                                cluster_id=rule.cluster_id, title=f"Delete HA rule {rule.rule}")


def run_rule_save(operation, reporter, *, rule: dict, update: bool) -> dict:
    fields = {k: rule.get(k) for k in ("type", "resources", "nodes", "strict", "affinity", "disable", "comment")}
    if fields["type"] != RuleType.NODE_AFFINITY:
        fields.pop("nodes"), fields.pop("strict")
    else:
        fields.pop("affinity")
    with client_for(operation.cluster_id) as client:
        (pve_ha.rule_update if update else pve_ha.rule_create)(client, rule["rule"], **fields)
        reporter.event(f"Rule {rule['rule']} {'updated' if update else 'created'}", progress=80)
        _refresh_rules(operation.cluster_id, client)
    return {"rule": rule["rule"]}


def run_rule_delete(operation, reporter, *, rule: str) -> dict:
    with client_for(operation.cluster_id) as client:
        pve_ha.rule_delete(client, rule)
        reporter.event(f"Rule {rule} deleted", progress=80)
        _refresh_rules(operation.cluster_id, client)
    return {"rule": rule}


# -- node maintenance --------------------------------------------------------------------------

def _node_online(cluster, node: str, *, field: str) -> None:
    found = cluster.nodes.filter(name=node).first()
    if found is None:
        raise ValidationError({field: [f"no node {node} in {cluster}"]})
    state = HaClusterState.objects.filter(cluster=cluster).first()
    members = state.members if state else {}
    if found.status != "online" or members.get(node) is False:
        lost = (state.lost_at.get(node) if state else None)
        raise ValidationError({field: [f"node {node} is offline" + (f" since {lost[:19].replace('T', ' ')} UTC" if lost else "")
                                       + ": HA cannot act on it until it is back"]})


def ha_node_maintenance(*, node, user, enable: bool):
    """Drain `node` (move its HA services to where the CRM would recover them, keeping them there)
    or bring it back (move them home again). Proxmox's API has no maintenance switch (only
    `ha-manager crm-command`), so the drain is HA migrations with failback held off meanwhile."""
    cluster = node.cluster
    check(user, "ha.manage", node)
    _node_online(cluster, node.name, field="node")
    state = HaClusterState.objects.filter(cluster=cluster).first()
    drained = (state.maintenance if state else {}).get(node.name)
    if enable and drained is not None:
        raise ValidationError({"node": [f"{node.name} is already in maintenance"]})
    if not enable and drained is None:
        raise ValidationError({"node": [f"{node.name} is not in maintenance"]})
    if state is not None and state.quorate is False:
        raise ValidationError({"node": ["the cluster has no quorum: Proxmox refuses every HA change"]})
    with transaction.atomic():
        return operation_create(kind="ha.node_maintenance", user=user, task_name="ha.ha_node_maintenance",
                                kwargs={"node": node.name, "enable": enable}, target=node, cluster_id=cluster.pk,
                                title=f"{'Drain' if enable else 'Bring back'} {node.name} (HA maintenance)")


def run_node_maintenance(operation, reporter, *, node: str, enable: bool) -> dict:
    from apps.nodes.models import Cluster

    from .explain import World, predict_failover

    cluster = Cluster.objects.get(pk=operation.cluster_id)
    state, _ = HaClusterState.objects.get_or_create(cluster=cluster)
    with client_for(cluster.pk) as client:
        if enable:
            _refresh_rules(cluster.pk, client)  # place by the rules as they are now, not as last read
            plan = predict_failover(cluster, node, World(cluster))
            moves = {}
            stay = [sid for sid, p in plan.items() if not p.target]
            for sid in stay:
                reporter.event(f"{sid} stays on {node}: {'; '.join(plan[sid].reasons)}", level="warning")
            # Saved before the first move: a worker that dies mid-drain leaves a way back.
            resources = {r.sid: r for r in HaResource.objects.filter(cluster=cluster, sid__in=list(plan))}
            for sid, placement in plan.items():
                if placement.target:
                    moves[sid] = {"target": placement.target, "failback": resources[sid].failback}
            HaClusterState.objects.filter(pk=state.pk).update(maintenance={**state.maintenance, node: moves})
            for n, (sid, move) in enumerate(sorted(moves.items()), start=1):
                pve_ha.resource_update(client, sid, failback=False)
                pve_ha.resource_move(client, sid, move["target"], relocate=sid.startswith("ct:"))
                reporter.event(f"{sid} → {move['target']} ({'; '.join(plan[sid].reasons)})",
                               progress=40 * n / max(len(moves), 1))
            _wait(client, reporter, lambda st: not any(s.node == node and (s.crm_state or s.state) in
                                                      ("started", "migrate", "relocate", "request_start")
                                                      for sid, s in st.services.items() if sid in moves),
                  what=f"{len(moves)} HA service(s) to leave {node}", start=40)
            reporter.event(f"{node} is drained: no HA service runs there", progress=100)
        else:
            moves = dict(state.maintenance.get(node) or {})
            for n, (sid, move) in enumerate(sorted(moves.items()), start=1):
                pve_ha.resource_move(client, sid, node, relocate=sid.startswith("ct:"))
                reporter.event(f"{sid} goes back to {node}", progress=40 * n / max(len(moves), 1))
            _wait(client, reporter, lambda st: all(st.services.get(sid) is None or st.services[sid].node == node
                                                   for sid in moves), what=f"services to return to {node}", start=40)
            for sid, move in moves.items():
                if move.get("failback") is not False:
                    pve_ha.resource_update(client, sid, failback=True)
            fresh = HaClusterState.objects.get(pk=state.pk)
            fresh.maintenance.pop(node, None)
            HaClusterState.objects.filter(pk=state.pk).update(maintenance=fresh.maintenance)
            reporter.event(f"{node} is back in service", progress=100)
    _request_sync(cluster.pk)
    return {"node": node, "moved": sorted(moves)}


def _wait(client, reporter, done, *, what: str, start: float = 10, timeout: float = NODE_DRAIN_TIMEOUT) -> None:
    """Poll the HA status until `done(status)`, reporting progress between `start` and 100."""
    deadline = time.monotonic() + timeout
    step = 0
    while True:
        status = pve_ha.status(client)
        if status is not None and done(status):
            return
        if time.monotonic() > deadline:
            raise ProxmoxError(f"timed out waiting for {what}")
        if reporter.heartbeat() != "running":
            from apps.operations.services import OperationCancelled

            raise OperationCancelled()
        step += 1
        if step % 10 == 1:
            reporter.event(f"Waiting for {what}", level="debug", progress=min(95, start + step))
        time.sleep(max(poll_interval(), 0.2))


def _request_sync(cluster_id: int) -> None:
    """The operation's end: the HA status, cluster status and node list read now, in this worker,
    and saved by the HA sync handler (HA options are only there), so the HA page shows the change
    when the operation ends, not at the next interval; the next cycle reads them again too, for
    the guests' rows (never raises)."""
    from apps.nodes.sync import refresh_handlers_now

    refresh_handlers_now(cluster_id, ("ha",))


# -- refresh: rules, replication, Ceph ---------------------------------------------------------

def ha_event_prune(*, now=None) -> int:
    """Delete HA events older than HA_EVENT_RETENTION_DAYS (setting, default 180); returns how many."""
    from datetime import timedelta

    from django.conf import settings

    days = float(getattr(settings, "HA_EVENT_RETENTION_DAYS", 180))
    cutoff = (now or timezone.now()) - timedelta(days=days)
    deleted, _ = HaEvent.objects.filter(at__lt=cutoff).delete()
    return deleted


def _ts(value) -> datetime | None:
    try:
        return datetime.fromtimestamp(int(value), tz=UTC) if value is not None else None
    except (TypeError, ValueError, OverflowError):
        return None


def _refresh_rules(cluster_id: int, client) -> None:
    try:
        items = pve_ha.rules(client)
    except ProxmoxError as exc:  # a cluster older than 9.x has no rules
        logger.info("HA rules of cluster %s not read: %s", cluster_id, exc)
        items = []
    want = {}
    for item in items:
        comment = item.get("comment") or ""
        group = comment.removeprefix("Generated from HA group '").removesuffix("'.") \
            if comment.startswith("Generated from HA group") else ""
        want[item["rule"]] = {
            "type": item.get("type") or RuleType.NODE_AFFINITY, "resources": sorted(item["resources"]),
            "nodes": item["nodes"], "strict": bool(int(item.get("strict") or 0)),
            "affinity": item.get("affinity") or "", "disable": bool(int(item.get("disable") or 0)),
            "comment": comment[:4096], "order": int(item.get("order") or 0), "errors": item.get("errors") or {},
            "from_group": group,
        }
    with transaction.atomic():
        existing = {r.rule: r for r in HaRule.objects.filter(cluster_id=cluster_id)}
        HaRule.objects.filter(cluster_id=cluster_id).exclude(rule__in=list(want)).delete()
        for name, values in want.items():
            row = existing.get(name)
            if row is None:
                HaRule.objects.create(cluster_id=cluster_id, rule=name, **values)
            elif any(getattr(row, k) != v for k, v in values.items()):
                HaRule.objects.filter(pk=row.pk).update(updated=timezone.now(), **values)


def _refresh_replication(cluster, client) -> None:
    from apps.guests.models import Guest

    jobs = {j["id"]: j for j in pve_ha.replication_jobs(client)}
    status = {}
    for node in cluster.nodes.filter(status="online").values_list("name", flat=True):
        try:
            for item in pve_ha.replication_status(client, node):
                status[item["id"]] = item
        except ProxmoxError as exc:  # one node that does not answer leaves its jobs without status
            logger.info("replication status of %s not read: %s", node, exc)
    vmids = {int(j.get("guest") or jid.split("-", 1)[0]) for jid, j in jobs.items()}
    guests = dict(Guest.objects.filter(cluster=cluster, vmid__in=vmids).values_list("vmid", "pk"))
    with transaction.atomic():
        ReplicationJob.objects.filter(cluster=cluster).exclude(job_id__in=list(jobs)).delete()
        for jid, job in jobs.items():
            st = status.get(jid, {})
            vmid = int(job.get("guest") or jid.split("-", 1)[0])
            ReplicationJob.objects.update_or_create(cluster=cluster, job_id=jid, defaults={
                "vmid": vmid, "guest_id": guests.get(vmid), "source": job.get("source") or st.get("source") or "",
                "target": job.get("target") or "", "schedule": job.get("schedule") or "*/15",
                "rate": job.get("rate"), "comment": job.get("comment") or "", "disable": bool(int(job.get("disable") or 0)),
                "remove_job": str(job.get("remove_job") or "")[:8],
                "last_sync": _ts(st.get("last_sync")), "last_try": _ts(st.get("last_try")),
                "next_sync": _ts(st.get("next_sync")), "duration": st.get("duration"),
                "fail_count": st.get("fail_count"), "error": st.get("error") or "",
            })


NEEDS_READS_PER_REFRESH = 50  # config reads one HA refresh makes at most (the rest wait for the next)


def _refresh_needs(cluster, client) -> None:
    """What each HA guest needs on another node (disk storages, PCI mappings): from the config the
    guests app already read, else from a config read here, once per guest and then again after
    HA_NEEDS_MAX_AGE (default an hour), at most NEEDS_READS_PER_REFRESH per refresh, those never
    read first. So a refresh costs no call per HA guest once they are known."""
    from datetime import timedelta

    from django.conf import settings
    from django.db.models import F

    from apps.proxmox import guests as pve_guests

    from .health import config_mappings, config_storages

    now = timezone.now()
    fresh_after = now - timedelta(seconds=settings.HA_NEEDS_MAX_AGE)
    reads = 0
    resources = HaResource.objects.filter(cluster=cluster, guest__isnull=False).select_related(
        "guest", "guest__node").order_by(F("needs_read_at").asc(nulls_first=True), "sid")
    for res in resources:
        guest, values = res.guest, {}
        config = guest.config
        if not config:
            if not guest.node_id or (res.needs_read_at and res.needs_read_at > fresh_after) \
                    or reads >= NEEDS_READS_PER_REFRESH:
                continue
            reads += 1
            try:
                config, _digest = pve_guests.config(client, guest.ref)
            except ProxmoxError as exc:  # its node is down: keep what we knew
                logger.info("config of %s not read: %s", res.sid, exc)
                continue
            values["needs_read_at"] = now
        storages, mappings = sorted(config_storages(config)), sorted(config_mappings(config))
        if (storages, mappings) != (res.storages, res.mappings):
            values.update(storages=storages, mappings=mappings)
        if values:
            HaResource.objects.filter(pk=res.pk).update(**values)


def ha_refresh(*, cluster) -> dict:
    """Read rules, replication jobs (and their status per node), Ceph health and the configs of HA
    guests we have none for, of one cluster: 3 + nodes calls (+ one per HA guest whose config was
    never read, or not for HA_NEEDS_MAX_AGE), whoever looks. Each part that fails is kept as it was
    and named in the error."""
    from dataclasses import asdict

    from apps.nodes.services import cluster_client

    errors = []
    with cluster_client(cluster) as client:
        _refresh_rules(cluster.pk, client)
        try:
            _refresh_needs(cluster, client)
        except ProxmoxError as exc:
            errors.append(f"guest configs: {exc}")
        try:
            _refresh_replication(cluster, client)
        except ProxmoxError as exc:
            errors.append(f"replication: {exc}")
        try:
            ceph = pve_ha.ceph_status(client)
            ceph_value = asdict(ceph) if ceph is not None else None
        except ProxmoxError as exc:
            errors.append(f"ceph: {exc}")
            ceph_value = HaClusterState.objects.filter(cluster=cluster).values_list("ceph", flat=True).first()
    state, _ = HaClusterState.objects.get_or_create(cluster=cluster)
    HaClusterState.objects.filter(pk=state.pk).update(ceph=ceph_value, refreshed_at=timezone.now(),
                                                      refresh_error="; ".join(errors))
    return {"errors": errors}
