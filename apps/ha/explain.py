"""Why an HA guest runs where it runs, and where it would go if its node failed.

Computed the way Proxmox's CRM chooses a node (select_service_node, pve-semantics §4.4): the
online nodes the node-affinity rule allows (its priorities; a non-strict rule lets any other
node in at priority -1), minus nodes holding a negative-affinity partner, narrowed to the nodes
of positive-affinity partners, the highest priority tier, then the least loaded (fewest active
HA services, then the smallest share of memory taken by running guests, then the name).
Recovery places the fenced node's services one by one in id order, each counting on its new node.
Storage and mapped devices do not steer the CRM: a node lacking them is still chosen and the
start fails there; the explanation says so instead of hiding it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .choices import Affinity, RuleType

ACTIVE_STATES = ("started", "request_start", "request_stop", "migrate", "relocate", "fence", "recovery")


@dataclass
class NodeChoice:
    node: str
    online: bool
    priority: int | None  # None: the rule does not allow it
    load: int = 0
    mem_share: float = 0.0
    notes: list[str] = field(default_factory=list)
    chosen: bool = False


@dataclass
class Placement:
    sid: str
    node: str
    rule: str = ""  # the node-affinity rule in effect
    strict: bool = False
    together: list[str] = field(default_factory=list)
    apart: list[str] = field(default_factory=list)
    choices: list[NodeChoice] = field(default_factory=list)
    target: str | None = None  # where recovery would put it (None: nowhere)
    reasons: list[str] = field(default_factory=list)


class World:
    """What the CRM knows, read once from our tables for one cluster."""

    def __init__(self, cluster):
        from apps.guests.models import Guest

        from .models import HaResource, HaRule

        self.cluster = cluster
        self.nodes = {n.name: n for n in cluster.nodes.all()}
        state = getattr(cluster, "ha", None)
        members = (state.members if state is not None else {}) or {}
        self.online = {name for name, n in self.nodes.items()
                       if members.get(name, n.status == "online") and n.status != "offline"}
        self.resources = {r.sid: r for r in HaResource.objects.filter(cluster=cluster).select_related("guest")}
        self.rules = [r for r in HaRule.objects.filter(cluster=cluster) if not r.disable]
        self.mem = {}
        for guest in Guest.objects.filter(cluster=cluster, status="running").select_related("node"):
            if guest.node_id:
                self.mem[guest.node.name] = self.mem.get(guest.node.name, 0) + (guest.maxmem or 0)
        self.extra_load: dict[str, int] = {}

    def node_rule(self, sid: str):
        for rule in self.rules:
            if rule.type == RuleType.NODE_AFFINITY and sid in rule.resources:
                return rule
        for partner in self.partners(sid)[0]:
            for rule in self.rules:
                if rule.type == RuleType.NODE_AFFINITY and partner in rule.resources:
                    return rule
        return None

    def partners(self, sid: str) -> tuple[list[str], list[str]]:
        together, apart = set(), set()
        for rule in self.rules:
            if rule.type == RuleType.RESOURCE_AFFINITY and sid in rule.resources:
                (together if rule.affinity == Affinity.POSITIVE else apart).update(set(rule.resources) - {sid})
        return sorted(together), sorted(apart)

    def load(self, node: str, exclude: str) -> int:
        own = sum(1 for sid, r in self.resources.items()
                  if sid != exclude and r.node == node and (r.crm_state or r.state) in ACTIVE_STATES)
        return own + self.extra_load.get(node, 0)

    def mem_share(self, node: str) -> float:
        n = self.nodes.get(node)
        return self.mem.get(node, 0) / max(getattr(n, "maxmem", 0) or 1, 1)


def place(world: World, sid: str, *, down: set[str] = frozenset()) -> Placement:
    """Where recovery would put `sid` with `down` nodes gone (the CRM's `best` mode)."""
    res = world.resources.get(sid)
    out = Placement(sid=sid, node=res.node if res else "")
    rule = world.node_rule(sid)
    together, apart = world.partners(sid)
    out.together, out.apart = together, apart
    if rule is not None:
        out.rule, out.strict = rule.rule, rule.strict
    banned = {world.resources[p].node for p in apart if p in world.resources
              and (world.resources[p].crm_state or world.resources[p].state) in ACTIVE_STATES}
    wanted = {world.resources[p].node for p in together if p in world.resources
              and (world.resources[p].crm_state or world.resources[p].state) in ACTIVE_STATES}
    for name in sorted(world.nodes):
        online = name in world.online and name not in down
        if rule is None:
            prio = 0
        elif name in rule.nodes:
            prio = int(rule.nodes[name])
        else:
            prio = None if rule.strict else -1
        choice = NodeChoice(node=name, online=online, priority=prio, load=world.load(name, sid),
                            mem_share=world.mem_share(name))
        if not online:
            choice.notes.append("offline" if name in down or name not in world.online else "not available")
        if prio is None:
            choice.notes.append(f"not allowed by strict rule {rule.rule}")
        if name in banned:
            choice.notes.append("holds a guest it must stay apart from")
        out.choices.append(choice)
    candidates = [c for c in out.choices if c.online and c.priority is not None and c.node not in banned]
    if wanted and any(c.node in wanted for c in candidates):
        candidates = [c for c in candidates if c.node in wanted]
        out.reasons.append(f"kept with {', '.join(together)} on {', '.join(sorted(wanted))}")
    if not candidates:
        out.reasons.append("no online node is allowed: the service would stay in recovery")
        return out
    top = max(c.priority for c in candidates)
    best = sorted((c for c in candidates if c.priority == top), key=lambda c: (c.load, c.mem_share, c.node))
    chosen = best[0]
    chosen.chosen = True
    out.target = chosen.node
    if rule is not None:
        out.reasons.append(f"rule {rule.rule} gives {chosen.node} priority {top}"
                           + (" (the highest among online nodes)" if len(candidates) > 1 else ""))
    if len(best) > 1:
        out.reasons.append(f"{chosen.node} carries the least load among {', '.join(c.node for c in best)} "
                           f"({chosen.load} HA service{'s' if chosen.load != 1 else ''})")
    elif rule is None:
        out.reasons.append(f"{chosen.node} is the only online node")
    return out


def predict_failover(cluster, node: str, world: World | None = None) -> dict[str, Placement]:
    """Where each HA service on `node` would restart if `node` failed, in the CRM's order."""
    world = world or World(cluster)
    out = {}
    for sid in sorted(world.resources):
        res = world.resources[sid]
        if res.node != node or (res.crm_state or res.state) not in ACTIVE_STATES + ("stopped",):
            continue
        placement = place(world, sid, down={node})
        out[sid] = placement
        if placement.target:
            world.extra_load[placement.target] = world.extra_load.get(placement.target, 0) + 1
    return out


def explain(resource) -> Placement:
    """The placement story of one HA resource: its failover target if its node failed now."""
    world = World(resource.cluster)
    predicted = predict_failover(resource.cluster, resource.node, world) if resource.node else {}
    placement = predicted.get(resource.sid) or place(world, resource.sid, down={resource.node} if resource.node else set())
    return placement
