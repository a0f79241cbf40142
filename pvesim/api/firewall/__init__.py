"""Firewall: cluster, node and guest options, rules, security groups, IP sets, aliases (pve-semantics §7).

State lives in `cluster.firewall` (plain dicts, one per PVE config file):
  cluster: {"options", "rules", "groups": {name: {"comment", "rules"}}, "ipsets": {name: {"comment", "entries"}},
            "aliases": {lower name: {"name", "cidr", "comment"}}}
  nodes:   {node: {"options", "rules"}}
  guests:  {vmid: {"options", "rules", "ipsets", "aliases", "guest": <Guest it belongs to>}}
All calls are synchronous and return null on writes. `digest` is the SHA1 of the file's content;
a stale digest is refused like PVE does. The IPS options `ips`/`ips_queues` are not in the API schema,
so validation rejects them (they only exist in the .fw file).

Code by concern:

    schema   option and rule declarations, macros, protocols, services
    levels   Level (which config file a URL addresses and who may read/write it), digests
    rules    rule validation (PVE::Firewall::verify_rule) and the rule routes of every level
    groups   security groups (/cluster/firewall/groups)
    options  the options routes of every level
    ipsets   IP sets of the cluster and of guests
    aliases  aliases of the cluster and of guests
    index    refs, guest extras, logs, the macro list and the index routes
    loader   install(): the scenario's [firewall] section
"""

from __future__ import annotations

from .schema import (CLUSTER_OPTIONS, DIGEST, GROUP, GUEST_OPTIONS, LOG_LEVELS, LOG_RATELIMIT, MACROS, NAME,
                     NODE_OPTIONS, OPTIONAL_RULE_KEYS, POLICIES, PORT_PROTOCOLS, POS, PROTOCOLS, RULE_KEYS, SERVICES,
                     STALE)
from .levels import GUEST_LEVELS, LEVELS, Level, digest_of, guest_conf
from . import rules  # noqa: F401 - registers its routes
from .groups import create_group, delete_group, list_group_rules, list_groups
from . import options  # noqa: F401 - registers its routes
from .ipsets import CIDR, IPSET_NAME
from . import aliases  # noqa: F401 - registers its routes
from .index import LOG_PARAMS, REF_TYPE, cluster_index, cluster_refs, macros, node_index, node_log
from .loader import install

__all__ = [
    "CIDR", "CLUSTER_OPTIONS", "DIGEST", "GROUP", "GUEST_LEVELS", "GUEST_OPTIONS", "IPSET_NAME", "LEVELS", "LOG_LEVELS",
    "LOG_PARAMS", "LOG_RATELIMIT", "MACROS", "NAME", "NODE_OPTIONS", "OPTIONAL_RULE_KEYS", "POLICIES", "PORT_PROTOCOLS",
    "POS", "PROTOCOLS", "REF_TYPE", "RULE_KEYS", "SERVICES", "STALE", "Level", "cluster_index", "cluster_refs",
    "create_group", "delete_group", "digest_of", "guest_conf", "install", "list_group_rules", "list_groups", "macros",
    "node_index", "node_log",
]
