"""The HA part of the inventory sync: state, resources and events from reads the cycle already made.

No Proxmox call here: the cycle's GET /cluster/status gives corosync membership and quorum, its
GET /cluster/ha/status/current the CRM master, fencing, each LRM and each service. Comparing them
with what we saved last cycle gives the timeline: node lost/back, quorum lost/regained, a service
entering fence or recovery, starting on a node, migrating, relocating, failing, a node's LRM going
into or out of maintenance. A quiet cycle writes nothing.
"""

from __future__ import annotations

import logging

from django.db import transaction
from django.utils import timezone

from apps.proxmox import ha as pve_ha

from .choices import EventKind
from .models import HaClusterState, HaEvent, HaResource

logger = logging.getLogger(__name__)

STATE_FIELDS = ("available", "quorate", "quorum_status", "votes", "expected_votes", "master_node", "master_state",
                "fencing", "resource_mode", "lrms", "members", "lost_at")
RESOURCE_FIELDS = ("vmid", "guest_id", "request_state", "crm_state", "state", "node", "max_restart", "max_relocate",
                   "failback", "comment", "group")


def _resource_values(service: pve_ha.ServiceState, guests: dict) -> dict:
    guest = guests.get(service.vmid)
    return {
        "vmid": service.vmid, "guest_id": guest.pk if guest else None,
        "request_state": service.request_state, "crm_state": service.crm_state, "state": service.state,
        "node": service.node, "max_restart": service.max_restart, "max_relocate": service.max_relocate,
        "failback": None if service.failback is None else bool(service.failback),
        "comment": service.comment[:4096], "group": service.group,
    }


class _Events:
    def __init__(self, cluster, at, guests):
        self.cluster, self.at, self.guests, self.rows = cluster, at, guests, []

    def add(self, kind, message, *, sid="", node="", target="", why=""):
        guest = self.guests.get(pve_ha.sid_vmid(sid)) if sid else None
        self.rows.append(HaEvent(cluster=self.cluster, at=self.at, kind=kind, sid=sid, node=node, target=target,
                                 message=message, why=why, guest=guest,
                                 tenant_id=guest.tenant_id if guest else None))


def _cluster_events(ev: _Events, old: HaClusterState | None, new: dict) -> None:
    if old is None:
        return  # the first look records the present, not a history
    if old.quorate is not None and new["quorate"] is not None and old.quorate != new["quorate"]:
        if new["quorate"]:
            ev.add(EventKind.QUORUM_REGAINED, f"Quorum regained: {new['votes']} of {new['expected_votes']} votes")
        else:
            ev.add(EventKind.QUORUM_LOST, f"Quorum lost: {new['votes']} of {new['expected_votes']} votes, "
                                          f"{new['expected_votes'] // 2 + 1} needed; writes are refused"
                                          + (f" ({new['quorum_status']})" if new["quorum_status"] not in ("", "OK") else ""))
    for node, online in sorted(new["members"].items()):
        was = old.members.get(node)
        if was and not online:
            ev.add(EventKind.NODE_LOST, f"Node {node} left the cluster; its HA services are fenced after the "
                                        "fence delay", node=node)
        elif was is False and online:
            ev.add(EventKind.NODE_BACK, f"Node {node} is back in the cluster", node=node)
    if old.master_node and new["master_node"] and old.master_node != new["master_node"]:
        ev.add(EventKind.MASTER, f"CRM master moved from {old.master_node} to {new['master_node']}",
               node=new["master_node"])
    for node, lrm in sorted(new["lrms"].items()):
        before = (old.lrms.get(node) or {}).get("state", "")
        now = lrm.get("state", "")
        if "maintenance" in now and "maintenance" not in before:
            ev.add(EventKind.MAINTENANCE_ON, f"Node {node} entered maintenance mode: its HA services move away",
                   node=node)
        elif "maintenance" in before and "maintenance" not in now:
            ev.add(EventKind.MAINTENANCE_OFF, f"Node {node} left maintenance mode", node=node)


def _service_events(ev: _Events, old: HaResource | None, new: dict, sid: str, placements: dict,
                    lost: set[str]) -> None:
    if old is None:
        return
    was, now = old.crm_state or old.state, new["crm_state"] or new["state"]
    node, before = new["node"], old.node
    if was == now and node == before:
        return
    if before in lost and node and node != before and was not in ("fence", "recovery"):
        # The only way off a lost node is fencing then recovery; the CRM can do both (and place the
        # service) in one round, between two cycles: what we saw still says which steps happened.
        ev.add(EventKind.FENCE, f"{sid} was fenced with its node {before}", sid=sid, node=before)
        was = "fence"
    if now == "fence" and was != "fence":
        ev.add(EventKind.FENCE, f"{sid} is being fenced with its node {node or before}", sid=sid, node=node or before)
    elif now == "recovery" and was != "recovery":
        ev.add(EventKind.RECOVERY, f"{sid} is in recovery: its node {before} was fenced", sid=sid, node=before)
    elif now in ("migrate", "relocate") and was != now:
        kind = EventKind.MIGRATE if now == "migrate" else EventKind.RELOCATE
        ev.add(kind, f"{sid} {'migrates' if now == 'migrate' else 'relocates'} away from {before}", sid=sid, node=before)
    elif now == "error" and was != "error":
        ev.add(EventKind.ERROR, f"{sid} entered the error state on {node}: the CRM gave up restarting it",
               sid=sid, node=node)
    elif now in ("started", "request_start", "starting", "request_stop", "stopped") \
            and (node != before or was in ("recovery", "fence")):
        why = placements.get(sid, "")
        if was == "fence":  # the CRM places a service in the round it leaves fence: recovery is not seen
            ev.add(EventKind.RECOVERY, f"{sid} recovered from fenced node {before} to {node}", sid=sid,
                   node=before, target=node, why=why)
        if was in ("recovery", "fence"):
            message = f"{sid} recovered on {node} (from fenced node {before})"
        elif was in ("migrate", "relocate"):
            message = f"{sid} now runs on {node} ({'migrated' if was == 'migrate' else 'relocated'} from {before})"
        else:
            message = f"{sid} started on {node}" + (f" (was on {before})" if before and before != node else "")
        ev.add(EventKind.STARTED, message, sid=sid, node=node, target=node, why=why)
    elif now in ("stopped",) and was not in ("stopped", "request_stop") and node == before:
        ev.add(EventKind.STOPPED, f"{sid} stopped on {node}", sid=sid, node=node)


def sync_ha(cluster, snapshot) -> list:
    """Save the HA state of `cluster` from the cycle's snapshot and record what happened since the
    last one (HaEvent rows, one bulk insert); push the HA page when someone watches."""
    from apps.guests.models import Guest

    from .explain import World, predict_failover

    parsed = pve_ha.parse_status(snapshot.ha_status)
    quorum = pve_ha.quorum(snapshot.status)
    # `online` is optional in /cluster/status: without it, the node's status in /cluster/resources.
    listed = {i["node"]: i.get("status") == "online" for i in snapshot.nodes if i.get("node")}
    members = {i["name"]: bool(i["online"]) if i.get("online") is not None else listed.get(i["name"], False)
               for i in snapshot.status if i.get("type") == "node" and i.get("name")} or listed
    old = HaClusterState.objects.filter(cluster=cluster).first()
    lost_at = dict(old.lost_at) if old else {}
    for node, online in members.items():
        if online:
            lost_at.pop(node, None)
        else:
            lost_at.setdefault(node, snapshot.fetched_at.isoformat())
    want = {
        "available": snapshot.ha_available,
        "quorate": parsed.quorate if parsed.quorate is not None else quorum.quorate,
        "quorum_status": parsed.quorum_status[:200], "votes": sum(members.values()),
        "expected_votes": max(quorum.expected_votes, len(members)),
        "master_node": parsed.master_node, "master_state": parsed.master_state[:60], "fencing": parsed.fencing[:20],
        "resource_mode": parsed.resource_mode[:20],
        "lrms": {n: {"state": lrm.state, "watchdog": lrm.watchdog} for n, lrm in sorted(parsed.lrms.items())},
        "members": members, "lost_at": lost_at,
    }
    vmids = [s.vmid for s in parsed.services.values() if s.vmid is not None]
    guests = {g.vmid: g for g in Guest.objects.filter(cluster=cluster, vmid__in=vmids)} if vmids else {}
    ev = _Events(cluster, snapshot.fetched_at, guests)
    _cluster_events(ev, old, want)

    existing = {r.sid: r for r in HaResource.objects.filter(cluster=cluster)}
    wanted = {sid: _resource_values(s, guests) for sid, s in parsed.services.items()}
    # Why a recovered service landed where it did: the prediction from what we knew before this cycle.
    placements = {}
    lost = {n for n, online in members.items() if not online}
    recovering = [sid for sid, w in wanted.items() if sid in existing
                  and ((existing[sid].crm_state or existing[sid].state) in ("recovery", "fence")
                       or (existing[sid].node in lost and w["node"] != existing[sid].node))
                  and (w["crm_state"] or w["state"]) not in ("recovery", "fence")]
    if recovering:
        world = World(cluster)
        for node in {existing[sid].node for sid in recovering}:
            for sid, placement in predict_failover(cluster, node, world).items():
                placements[sid] = "; ".join(placement.reasons)
    for sid, values in wanted.items():
        _service_events(ev, existing.get(sid), values, sid, placements, lost)

    created, updated = [], []
    now = timezone.now()
    for sid, values in wanted.items():
        row = existing.get(sid)
        if row is None:
            created.append(HaResource(cluster=cluster, sid=sid, **values))
            continue
        changed = [f for f in RESOURCE_FIELDS if getattr(row, f) != values[f]]
        if changed:
            for f in changed:
                setattr(row, f, values[f])
            row.updated = now
            updated.append(row)
    gone = [r.pk for sid, r in existing.items() if sid not in wanted]
    # A cluster that stopped answering HA status keeps its last known resources (no false removals).
    if gone and snapshot.ha_available:
        HaResource.objects.filter(pk__in=gone).delete()
    else:
        gone = []
    if created:
        HaResource.objects.bulk_create(created)
    if updated:
        HaResource.objects.bulk_update(updated, [*RESOURCE_FIELDS, "updated"])

    state_changed = old is None or any(getattr(old, f) != want[f] for f in STATE_FIELDS)
    if old is None:
        old = HaClusterState.objects.create(cluster=cluster, **want)
    elif state_changed:
        HaClusterState.objects.filter(pk=old.pk).update(updated=now, **want)
        for f, v in want.items():
            setattr(old, f, v)
    if ev.rows:
        HaEvent.objects.bulk_create(ev.rows)
    changed = created + updated + ev.rows + ([old] if state_changed else []) + gone
    if changed:
        from . import live

        # The guest pages whose HA panel changed: a resource added, changed or gone, or a new event.
        panels = {r.guest_id for r in created + updated} | {e.guest_id for e in ev.rows}
        panels |= {r.guest_id for r in existing.values() if r.pk in gone}
        transaction.on_commit(lambda: live.push_cluster(cluster.pk, events=bool(ev.rows)))
        transaction.on_commit(lambda: live.push_guest_panels(panels))
    return changed
