"""The HA stack (pve-ha-manager): configuration, the CRM and one LRM per node (pve-semantics §4.3-4.5).

One background thread runs a round every `ROUND` simulated seconds: first every LRM (agent lock,
watchdog, self-fencing, starting/stopping/migrating its services as tasks), then the CRM on the
master node (node states, fencing, the service state machine, recovery placement). All durations
are simulated seconds on `cluster.clock`; everything runs under `cluster.lock`.

Every transition is kept in `service_status`/`node_status` (what manager_status shows) and
written to the cluster log the way pve-ha-crm/pve-ha-lrm log it, so a client can draw a timeline.
Node power/partition changes need no hook: each round reads node state and quorum afresh.

Timeline of a node failure (simulated seconds after the node dies): its LRM stops renewing the
agent lock; CRM marks the node `unknown`, after FENCE_DELAY `fence` (services `fence`), once the
lock is LOCK_LIFETIME old it logs `fencing: acknowledged - got agent lock for node 'x'`, services go
`recovery` and are placed on the best allowed node, then `started` (the LRM there runs qmstart).
A node cut off from quorum with active services resets itself after WATCHDOG_TIMEOUT.

Legacy groups: every simulated node runs 9.x, so the CRM converts groups into node-affinity rules
(`ha-group-<group>`, strict = restricted, failback = !nofailback) as soon as all nodes and LRMs are
up; until then (a scenario with groups and a node down) the groups API works; afterwards, as on
real 9.x, it answers `cannot ...: ha groups have been migrated to rules`.

Public methods for other modules: add_resource(sid, **opts), update_resource(sid, opts, delete,
digest), remove_resource(sid, purge=True), request_state(sid, state), is_managed(sid),
sid_for(vmid), migrate(sid, node, kind), disarm_ha(mode), arm_ha(), service_state(sid),
node_state(node), select_node(sid, current), status_current(node), manager_status(node).

Code by concern: common (timings, defaults, config_digest), manager (HAManager's state, start/stop, the
loop), config (resources, requests, arming), rules (feasibility, group migration), placement
(select_node), lrm, crm, status (status/current, manager_status).
"""

from __future__ import annotations

from .common import (ACTIVE_STATES, FENCE_DELAY, FENCEABLE, LOCK_LIFETIME, RESOURCE_DEFAULTS, RESOURCE_KEYS, ROUND,
                     WATCHDOG_TIMEOUT, config_digest)
from .manager import HAManager

__all__ = ["ACTIVE_STATES", "FENCE_DELAY", "FENCEABLE", "LOCK_LIFETIME", "RESOURCE_DEFAULTS", "RESOURCE_KEYS", "ROUND",
           "WATCHDOG_TIMEOUT", "HAManager", "config_digest"]
