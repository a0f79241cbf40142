"""/access: tickets, realms, users, API tokens, groups, roles, ACLs, permissions (pve-semantics §1.3, §6).

Permission checks follow the schema's `permissions` of each endpoint (RPCEnvironment's
`userid-group`, `userid-param`, `perm-modify` tests); errors inside a config change carry PVE's
"<action> failed: " prefix (lock_user_config). Every change is validated before anything is written.

Code by concern:

    common       USERID/TOKEN_SUBID declarations, the schema's permission tests, list splitting
    tickets      POST /access/ticket, GET /access/domains, the /access index
    users        /access/users
    tokens       /access/users/{userid}/token
    groups       /access/groups
    roles        /access/roles
    acl          /access/acl
    permissions  GET /access/permissions, PUT /access/password
"""

from __future__ import annotations

# imported in the order the routes were registered in the single module this package replaces
from . import tickets, users, tokens, groups, roles, acl, permissions  # noqa: F401 - registers their routes
