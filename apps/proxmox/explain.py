"""Proxmox's refusals in a person's words: one table for every action.

`explain("Could not start VM 100 (web1)", exc)` ->
`Could not start VM 100 (web1): it is already running. Proxmox said: VM 100 already running`.
Rows scoped to an action ("create", "migrate") are tried first for that action, then the general
rows in order; the first match gives the reason. Proxmox's exact text always ends the message.
"""

from __future__ import annotations

import re
from typing import Callable

from .errors import ProxmoxError, ProxmoxUnreachable

LOCK_MEANING = {
    "backup": "a backup is running", "clone": "it is being cloned", "create": "it is being created",
    "migrate": "it is being migrated", "rollback": "a snapshot rollback is running",
    "snapshot": "a snapshot is being taken", "snapshot-delete": "a snapshot is being deleted",
    "suspending": "it is being suspended", "suspended": "it is suspended to disk",
    "disk": "a disk operation is running", "mounted": "its volumes are mounted", "destroyed": "it is being destroyed",
}

Say = Callable[[re.Match, dict], str]


def _text(template: str) -> Say:
    return lambda m, ctx: template.format(**ctx, **{k: v for k, v in m.groupdict().items() if v is not None})


def _row(scope: str | None, pattern: str, say, flags: int = 0) -> tuple[str | None, re.Pattern, Say]:
    return scope, re.compile(pattern, flags), say if callable(say) else _text(say)


_TABLE = [
    # -- creating a guest
    _row("create", r"not enough free space|No space left|storage full", "the storage is full", re.I),
    _row("create", r"no quorum", "the cluster has no quorum"),
    _row("create", r"already exists", "the VMID is already used on Proxmox"),
    _row("create", r"is locked \((?P<lock>[\w-]+)\)", "the guest is locked"),
    _row("create", r"does not exist", "something it needs does not exist on Proxmox"),
    _row("create", r"Parameter verification failed|value does not look like|invalid", "Proxmox rejected a value", re.I),
    # -- migrating a guest
    _row("migrate", r"No route to host|Can't connect to destination|Connection (refused|timed out)|"
                    r"Host key verification failed", "the target node {target} is offline or became unreachable", re.I),
    _row("migrate", r"missing mapped devices? (?P<dev>[\w, ]+)",
         lambda m, c: f"{c['target']} has no mapping for its mapped device {m['dev'].strip()}"),
    _row("migrate", r"can't live migrate running VM which uses following mapped devices: (?P<dev>.+)",
         "it is running with mapped device {dev}, which cannot move live; shut it down first"),
    _row("migrate", r"uses local devices: (?P<dev>.+)", "it uses devices that exist only on its node ({dev})"),
    _row("migrate", r"storage '(?P<s>[^']+)' is not available on node '(?P<n>[^']+)'",
         "storage {s} is not available on {n}"),
    _row("migrate", r"out of space|No space left", "the target storage is full", re.I),
    _row("migrate", r"target is local node", "it is already on {target}"),
    _row("migrate", r"lxc live migration is currently not implemented",
         "containers cannot migrate live; restart mode is needed"),
    _row("migrate", r"local cdrom image", "a local CD-ROM image is inserted; eject it first"),
    # -- every action
    _row(None, r"PCI device '(?P<pci>[0-9a-fA-F:.]+)' (?:already in use|is currently reserved for use) by VMID "
               r"'(?P<holder>\d+)'",
         "its GPU {pci} is held by VM {holder}; stop VM {holder} (or remove its GPU), or give this guest a GPU "
         "profile with a free card"),
    _row(None, r"configuring device passthrough is only allowed for root@pam",
         "Proxmox lets only root@pam itself (not an API token) pass device nodes into a container; the portal "
         "does it with the cluster's root@pam credential, which an operator enters in the cluster's settings"),
    _row(None, r"has no available instances of '(?P<mdev>[^']+)'|could not find a free device for '(?P<key>\w+)'",
         "every card of its GPU mapping on this node is in use; stop a guest that uses one, or migrate to a node "
         "with a free card"),
    _row(None, r"(?:VM|CT) is locked \((?P<lock>[\w-]+)\)",
         lambda m, c: f"it is locked ({m['lock']}: {LOCK_MEANING.get(m['lock'], 'another task holds it')})"),
    _row(None, r"no quorum", "the cluster has no quorum, so Proxmox refuses changes until it is back"),
    _row(None, r"protection mode enabled", "protection is on; turn it off in the guest's settings first"),
    _row(None, r"used in HA resources and purge parameter not set",
         "it is managed by HA; ask to purge its HA and backup-job entries too"),
    _row(None, r"is running - destroy failed|container is running", "it is running; stop it first"),
    _row(None, r"contains snapshots", "it has snapshots; delete them first"),
    _row(None, r"convert a (VM|CT) to template if", "it is running; shut it down first"),
    _row(None, r"template to a template", "it is already a template"),
    _row(None, r"shrinking disks is not supported", "disks can only grow"),
    _row(None, r"not enough free space on storage '(?P<s>[^']+)'", "storage {s} is full"),
    _row(None, r"snapshot name '(?P<n>[^']+)' already used", "a snapshot named {n} already exists"),
    _row(None, r"snapshot '(?P<n>[^']+)' does not exist", "snapshot {n} does not exist (any more)"),
    _row(None, r"snapshot feature is not available", "one of its disks is on storage without snapshots"),
    _row(None, r"Linked clone feature is not supported", "its storage cannot make linked clones; use a full clone"),
    _row(None, r"uses local storage", "its disks are on local storage, so it can only be cloned on its own node"),
    _row(None, r"config file already exists|already exists", "that VMID is already used"),
    _row(None, r"already running", "it is already running"),
    _row(None, r"not running", "it is not running"),
    _row(None, r"it's a template", "it is a template (clone it to get a guest you can start)"),
    _row(None, r"is paused - cannot shutdown", "it is paused; resume it first or stop it"),
    _row(None, r"can't lock file", "another task is changing its configuration right now"),
    _row(None, r"does not exist", "Proxmox no longer has it on that node (moved or deleted)"),
]

_UNREACHABLE = {
    "create": "node {node} or the cluster is unreachable",
    None: "node {node} is offline or unreachable",
}


def reason(exc: ProxmoxError | str, *, scope: str | None = None, node: str = "", target: str = "") -> str:
    """The reason in words for `exc` (or Proxmox's message text), '' when the table has none."""
    ctx = {"node": node or "its node", "target": target or "the target node"}
    if isinstance(exc, ProxmoxUnreachable):
        return _UNREACHABLE.get(scope, _UNREACHABLE[None]).format(**ctx)
    text = str(exc)  # the message and, for a validation error, its per-field reasons
    for rows in ([r for r in _TABLE if r[0] == scope] if scope else [], [r for r in _TABLE if r[0] is None]):
        for _, pattern, say in rows:
            match = pattern.search(text)
            if match:
                return say(match, ctx)
    return ""


def explain(head: str, exc: ProxmoxError | str, *, scope: str | None = None, node: str = "", target: str = "",
            said: str | None = None) -> str:
    """`<head>: <reason>. Proxmox said: <exact text>` (without a known reason: `<head>. Proxmox said: ...`).
    `said` replaces the quoted text (e.g. the task log's error line instead of the exit status)."""
    text = said if said is not None else (exc.message or str(exc) if isinstance(exc, ProxmoxError) else str(exc))
    why = reason(exc, scope=scope, node=node, target=target)
    return f"{head}: {why}. Proxmox said: {text}" if why else f"{head}. Proxmox said: {text}"
