"""Reads and writes of the Proxmox firewall, each asking the policy first.

Every write is one synchronous Proxmox call (Proxmox's firewall API has no tasks), sent after the
input passed `validation` and outside any database transaction, then audited (success, failure
or denial). Who may do what:

- a guest's rules, options, IP sets and aliases: whoever may see the guest reads them
  (`firewall.view`), its tenant's members and operators change them (`firewall.edit`);
- security groups and IP sets of the datacenter: operators manage the shared ones; a tenant's own
  carry the prefix `t<tenant id>_` on Proxmox's one flat namespace (`tenant_prefix`), its members
  manage those and may use the shared ones, and never see or name another tenant's;
- the datacenter's and nodes' rules, options and aliases: operators (auditors read), tenants 404.

Errors: ValidationError (field map) before anything is sent; NotVisible (404) / Denied (403,
audited); FirewallRefused when Proxmox says no (`status` 409, 502 when unreachable), with
Proxmox's exact message.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from django.core.cache import cache
from django.core.exceptions import ValidationError

from apps.core.models import AuditResult
from apps.core.services import audit_log
from apps.operations.clients import client_for
from apps.permissions.policy import NotVisible, as_actor, can, check
from apps.proxmox import ProxmoxError, ProxmoxUnreachable, ProxmoxValidationError
from apps.proxmox import firewall as pve_fw

from . import validation
from .validation import RuleContext

TENANT_NAME_RE = re.compile(r"^t(\d+)_")
MACRO_CACHE_SECONDS = 3600
STALE_RE = re.compile(r"detected modified configuration|digest", re.IGNORECASE)


class FirewallRefused(Exception):
    """Proxmox refused the call: `message` in words with Proxmox's text, `status` for the API."""

    def __init__(self, message: str, *, proxmox_message: str = "", status: int = 409):
        super().__init__(message)
        self.message, self.proxmox_message, self.status = message, proxmox_message, status


def tenant_prefix(tenant_id: int) -> str:
    return f"t{tenant_id}_"


def owner_of(name: str) -> int | None:
    """The tenant a datacenter group / IP set belongs to, None for the operators' shared ones."""
    match = TENANT_NAME_RE.match(name or "")
    return int(match.group(1)) if match else None


def short_name(name: str) -> str:
    return TENANT_NAME_RE.sub("", name or "", count=1)


@dataclass(frozen=True)
class Target:
    """Where rules live: a guest, a node, the datacenter, or one of its security groups."""

    kind: str  # guest | node | cluster | group
    cluster: object
    guest: object = None
    node: object = None
    group: str | None = None

    @property
    def level(self) -> pve_fw.Level:
        if self.kind == "guest":
            return pve_fw.Level.of_guest(self.guest.ref)
        if self.kind == "node":
            return pve_fw.Level.of_node(self.node.name)
        return pve_fw.Level.cluster()

    @property
    def audit_target(self):
        return self.guest or self.node or self.cluster

    @property
    def label(self) -> str:
        if self.kind == "guest":
            return f"{self.guest.kind} {self.guest}"
        if self.kind == "node":
            return f"node {self.node.name}"
        if self.kind == "group":
            return f"security group {self.group}"
        return f"datacenter {self.cluster}"


# -- who may ----------------------------------------------------------------------------------------

def may_see_datacenter(user) -> bool:
    return can(user, "firewall.datacenter_view")


def require_datacenter(user, cluster, *, write: bool) -> None:
    """Datacenter and node firewall: unseen (404) for tenants, read-only for auditors (403)."""
    if not may_see_datacenter(user):
        raise NotVisible("no such firewall")
    check(user, "firewall.manage" if write else "firewall.datacenter_view", cluster)


def require(user, target: Target, *, write: bool) -> None:
    if target.kind == "guest":
        check(user, "firewall.edit" if write else "firewall.view", target.guest)
        if target.guest.node_id is None:
            raise ValidationError({"node": [f"the node of {target.guest} is not known yet; wait for the next sync"]})
    elif target.kind == "group":
        require_group(user, target.cluster, target.group, write=write)
    else:
        require_datacenter(user, target.cluster, write=write)


def require_group(user, cluster, name: str, *, write: bool) -> None:
    """A tenant's own group: its members; a shared group: everyone reads (to use it), operators write."""
    actor = as_actor(user)
    owner = owner_of(name)
    check(user, "firewall.view", cluster)
    if actor.sees_everything:
        if write:
            check(user, "firewall.manage", cluster)
        return
    if owner is not None and owner != actor.tenant_id:
        raise NotVisible("no such security group")
    if write:
        if owner is None:
            check(user, "firewall.manage", cluster)
        check(user, "firewall.edit", cluster)


def check_cluster_visible(user, cluster) -> None:
    check(user, "firewall.view", cluster)


def may_write(user, target: Target) -> bool:
    """Whether the page offers changes (asked without auditing; the service still checks)."""
    if target.kind == "guest":
        return can(user, "firewall.edit", target.guest)
    if target.kind == "group":
        owner = owner_of(target.group)
        if owner is None:
            return can(user, "firewall.manage")
        return can(user, "firewall.manage") or (owner == as_actor(user).tenant_id and can(user, "firewall.edit"))
    return can(user, "firewall.manage")


def may_use(user):
    """For validation: a tenant names only shared datacenter objects and its own."""
    actor = as_actor(user)

    def allowed(kind: str, scope: str, name: str) -> bool:
        if actor.sees_everything or scope == "guest" or kind == "alias":
            return True
        owner = owner_of(name)
        return owner is None or owner == actor.tenant_id
    return allowed


def visible_name(user, name: str) -> bool:
    actor = as_actor(user)
    owner = owner_of(name)
    return actor.sees_everything or owner is None or owner == actor.tenant_id


# -- Proxmox, with refusals in words ----------------------------------------------------------------

class _Call:
    """One client for a service call; Proxmox's refusals become FirewallRefused / ValidationError."""

    def __init__(self, cluster, what: str):
        self.cluster, self.what = cluster, what

    def __enter__(self):
        self.client = client_for(self.cluster.pk)
        return self.client

    def __exit__(self, kind, exc, tb):
        self.client.close()
        if isinstance(exc, ProxmoxValidationError):
            raise ValidationError({k: [f"Proxmox refused it: {v}"] for k, v in exc.errors.items()}
                                  or {"__all__": [f"Proxmox refused it: {exc}"]}) from exc
        if isinstance(exc, ProxmoxError):
            if STALE_RE.search(exc.message):
                raise FirewallRefused(f"Could not {self.what}: someone else changed this firewall since you "
                                      f"loaded it; reload and try again. Proxmox said: {exc.message}",
                                      proxmox_message=exc.message) from exc
            raise FirewallRefused(f"Could not {self.what}. Proxmox said: {exc.message}", proxmox_message=exc.message,
                                  status=502 if isinstance(exc, ProxmoxUnreachable) else 409) from exc
        return False


def _audited(user, action: str, target, detail: dict, run):
    """Run the Proxmox write `run()`, then audit its result (failures too) and re-raise."""
    try:
        result = run()
    except (FirewallRefused, ValidationError) as exc:
        message = getattr(exc, "message", None) or "; ".join(
            f"{k}: {', '.join(v)}" for k, v in getattr(exc, "message_dict", {}).items()) or str(exc)
        audit_log(user=user, action=action, target=target, result=AuditResult.FAILURE,
                  detail={**detail, "error": message[:500]})
        raise
    audit_log(user=user, action=action, target=target, result=AuditResult.SUCCESS, detail=detail)
    return result


def macros(cluster) -> dict[str, str]:
    """Proxmox's macro list, kept an hour (it changes only with a pve-firewall upgrade)."""
    key = f"firewall:macros:{cluster.pk}"
    found = cache.get(key)
    if found is None:
        with _Call(cluster, "read the firewall macros") as client:
            found = pve_fw.macros(client)
        cache.set(key, found, MACRO_CACHE_SECONDS)
    return found


# -- reads ------------------------------------------------------------------------------------------

def rules_read(*, user, target: Target) -> tuple[list[dict], str]:
    """The target's rules in order, with the file's digest (send it back with edits)."""
    require(user, target, write=False)
    with _Call(target.cluster, f"read the rules of {target.label}") as client:
        return pve_fw.rules(client, target.level, group=target.group)


def options_read(*, user, target: Target) -> tuple[dict, str]:
    require(user, target, write=False)
    with _Call(target.cluster, f"read the firewall options of {target.label}") as client:
        return pve_fw.options(client, target.level)


def groups_read(*, user, cluster) -> list[dict]:
    """Security groups the user may see: everyone sees the shared ones, a tenant its own."""
    check(user, "firewall.view", cluster)
    with _Call(cluster, "read the security groups") as client:
        found = pve_fw.groups(client)
    actor = as_actor(user)
    out = []
    for group in found:
        owner = owner_of(group["group"])
        if visible_name(user, group["group"]):
            out.append({**group, "owner": owner, "short": short_name(group["group"]),
                        "editable": can(user, "firewall.manage") or (owner is not None and owner == actor.tenant_id
                                                                      and can(user, "firewall.edit"))})
    return out


def ipsets_read(*, user, target: Target) -> list[dict]:
    """IP sets with their entries: a guest's, or the datacenter's the user may see."""
    _require_sets(user, target, write=False)
    with _Call(target.cluster, f"read the IP sets of {target.label}") as client:
        sets = [s for s in pve_fw.ipsets(client, target.level)
                if target.kind == "guest" or visible_name(user, s["name"])]
        for item in sets:
            item["entries"] = pve_fw.ipset_entries(client, target.level, item["name"])
            item["owner"] = owner_of(item["name"]) if target.kind != "guest" else None
            item["short"] = short_name(item["name"]) if target.kind != "guest" else item["name"]
    return sets


def aliases_read(*, user, target: Target) -> list[dict]:
    _require_sets(user, target, write=False, aliases=True)
    with _Call(target.cluster, f"read the aliases of {target.label}") as client:
        return pve_fw.aliases(client, target.level)


def log_read(*, user, target: Target, limit: int = 200) -> list[dict]:
    require(user, target, write=False)
    with _Call(target.cluster, f"read the firewall log of {target.label}") as client:
        return pve_fw.log(client, target.level, limit=limit)


def _require_sets(user, target: Target, *, write: bool, aliases: bool = False, name: str | None = None) -> None:
    """A guest's IP sets and aliases follow the guest; the datacenter's aliases are the operators';
    a datacenter IP set follows its owner like a security group (shared: operators write)."""
    if target.kind == "guest":
        require(user, target, write=write)
    elif aliases:
        require_datacenter(user, target.cluster, write=write)
    elif name is not None:
        require_group(user, target.cluster, name, write=write)
    else:
        check(user, "firewall.view", target.cluster)


# -- validation context --------------------------------------------------------------------------

def rule_context(*, user, target: Target) -> RuleContext:
    """What a rule at `target` may name, read from Proxmox (macros cached)."""
    level = "group" if target.kind == "group" else target.kind
    context = RuleContext(level=level, macros=macros(target.cluster), may_use=may_use(user))
    ref_level = target.level if target.kind == "guest" else pve_fw.Level.cluster()
    with _Call(target.cluster, "read the firewall's IP sets and aliases") as client:
        if target.kind != "group":
            context.groups = {g["group"] for g in pve_fw.groups(client)}
        for ref in pve_fw.refs(client, ref_level):
            table = context.ipsets if ref["type"] == "ipset" else context.aliases
            key = ref["name"] if ref["type"] == "ipset" else ref["name"].lower()
            table[key] = ",".join(filter(None, [table.get(key), ref["scope"]]))
    return context


# -- rule writes ------------------------------------------------------------------------------------

def rule_create(*, user, target: Target, data: dict, pos: int | None = None, digest: str | None = None) -> dict:
    """Add a rule (on top unless `pos`). Returns the rule as sent."""
    require(user, target, write=True)
    rule = validation.clean_rule(data, rule_context(user=user, target=target))

    def run():
        with _Call(target.cluster, f"add the rule to {target.label}") as client:
            pve_fw.create_rule(client, target.level, rule, pos=pos, group=target.group, digest=digest)
        return rule
    return _audited(user, "firewall.rule_create", target.audit_target,
                    {"where": target.label, "rule": rule, **({"pos": pos} if pos is not None else {})}, run)


def rule_update(*, user, target: Target, pos: int, data: dict, digest: str | None = None) -> dict:
    """Replace the rule at `pos` with `data` (fields left empty are cleared)."""
    require(user, target, write=True)
    rule = validation.clean_rule(data, rule_context(user=user, target=target))
    cleared = [k for k in pve_fw.CLEARABLE_RULE_FIELDS if k not in rule]

    def run():
        with _Call(target.cluster, f"change rule {pos} of {target.label}") as client:
            pve_fw.update_rule(client, target.level, pos, rule, delete=cleared, group=target.group, digest=digest)
        return rule
    return _audited(user, "firewall.rule_update", target.audit_target,
                    {"where": target.label, "pos": pos, "rule": rule}, run)


def rule_enable(*, user, target: Target, pos: int, enable: bool, digest: str | None = None) -> None:
    require(user, target, write=True)

    def run():
        with _Call(target.cluster, f"{'enable' if enable else 'disable'} rule {pos} of {target.label}") as client:
            current, _ = pve_fw.rules(client, target.level, group=target.group)
            rule = next((r for r in current if r["pos"] == pos), None)
            if rule is None:
                raise ValidationError({"pos": [f"no rule at position {pos}"]})
            pve_fw.update_rule(client, target.level, pos, {"type": rule["type"], "action": rule["action"],
                                                            "enable": 1 if enable else 0},
                               group=target.group, digest=digest)
    _audited(user, "firewall.rule_enable" if enable else "firewall.rule_disable", target.audit_target,
             {"where": target.label, "pos": pos}, run)


def rule_move(*, user, target: Target, pos: int, to: int, digest: str | None = None) -> None:
    """Move the rule at `pos` so that it ends up at position `to` (0 = top)."""
    require(user, target, write=True)
    if pos < 0 or to < 0:
        raise ValidationError({"to": ["positions start at 0"]})

    def run():
        with _Call(target.cluster, f"move rule {pos} of {target.label}") as client:
            count = len(pve_fw.rules(client, target.level, group=target.group)[0])
            if pos >= count:
                raise ValidationError({"pos": [f"no rule at position {pos}"]})
            if to >= count:
                raise ValidationError({"to": [f"the last position is {count - 1}"]})
            # Proxmox's moveto puts the rule before the one now at that index: moving down needs one more.
            moveto = to + 1 if to > pos else to
            if to != pos:
                pve_fw.move_rule(client, target.level, pos, moveto, group=target.group, digest=digest)
    _audited(user, "firewall.rule_move", target.audit_target, {"where": target.label, "pos": pos, "to": to}, run)


def rule_delete(*, user, target: Target, pos: int, digest: str | None = None) -> None:
    require(user, target, write=True)

    def run():
        with _Call(target.cluster, f"delete rule {pos} of {target.label}") as client:
            pve_fw.delete_rule(client, target.level, pos, group=target.group, digest=digest)
    _audited(user, "firewall.rule_delete", target.audit_target, {"where": target.label, "pos": pos}, run)


# -- options ----------------------------------------------------------------------------------------

OPTION_FIELDS = {
    "cluster": {"enable": "bool", "policy_in": "policy", "policy_out": "policy", "ebtables": "bool"},
    "node": {"enable": "bool", "log_level_in": "log", "log_level_out": "log", "ndp": "bool", "nosmurfs": "bool",
             "tcpflags": "bool", "smurf_log_level": "log", "tcp_flags_log_level": "log"},
    "guest": {"enable": "bool", "policy_in": "policy", "policy_out": "policy", "dhcp": "bool", "ndp": "bool",
              "radv": "bool", "macfilter": "bool", "ipfilter": "bool", "log_level_in": "log", "log_level_out": "log"},
}


def options_update(*, user, target: Target, values: dict, digest: str | None = None) -> dict:
    """Set the options given; an empty value resets one to Proxmox's default."""
    require(user, target, write=True)
    fields = OPTION_FIELDS[target.kind]
    unknown = sorted(set(values) - set(fields))
    if unknown:
        raise ValidationError({k: ["not a firewall option at this level"] for k in unknown})
    params, delete, errors = {}, [], {}
    for key, value in values.items():
        kind = fields[key]
        if value in (None, ""):
            delete.append(key)
        elif kind == "bool":
            if value not in (True, False, 0, 1, "0", "1", "on", "off", "true", "false"):
                errors[key] = ["on or off"]
            else:
                params[key] = 1 if value in (True, 1, "1", "on", "true") else 0
        elif kind == "policy":
            if value not in pve_fw.POLICIES:
                errors[key] = [f"one of {', '.join(pve_fw.POLICIES)}"]
            params[key] = value
        elif kind == "log":
            if value not in pve_fw.LOG_LEVELS:
                errors[key] = [f"one of {', '.join(pve_fw.LOG_LEVELS)}"]
            params[key] = value
    if errors:
        raise ValidationError(errors)

    def run():
        with _Call(target.cluster, f"change the firewall options of {target.label}") as client:
            pve_fw.set_options(client, target.level, digest=digest, delete=delete, **params)
        return params
    return _audited(user, "firewall.options", target.audit_target,
                    {"where": target.label, "set": params, "reset": delete}, run)


# -- security groups --------------------------------------------------------------------------------

def group_create(*, user, cluster, name: str, comment: str = "") -> str:
    """A tenant's group gets its tenant's prefix; operators' names may not look like a tenant's."""
    actor = as_actor(user)
    prefix = "" if actor.is_operator else tenant_prefix(actor.tenant_id or 0)
    check(user, "firewall.manage" if actor.is_operator else "firewall.edit", cluster)
    full = validation.clean_name(name, field_name="name", limit=validation.GROUP_MAX, prefix=prefix)
    if actor.is_operator and owner_of(full) is not None:
        raise ValidationError({"name": ["names starting with t<number>_ are kept for tenants' groups"]})
    _one_line(comment)

    def run():
        with _Call(cluster, f"create security group {full}") as client:
            if any(g["group"].lower() == full.lower() for g in pve_fw.groups(client)):
                raise ValidationError({"name": [f"security group '{short_name(full)}' already exists"]})
            pve_fw.create_group(client, full, comment=comment)
        return full
    return _audited(user, "firewall.group_create", cluster, {"group": full}, run)


def group_delete(*, user, cluster, name: str) -> None:
    require_group(user, cluster, name, write=True)

    def run():
        with _Call(cluster, f"delete security group {name}") as client:
            pve_fw.delete_group(client, name)
    _audited(user, "firewall.group_delete", cluster, {"group": name}, run)


# -- IP sets and aliases ----------------------------------------------------------------------------

def _one_line(comment: str, field_name: str = "comment") -> None:
    if "\n" in (comment or "") or "\r" in (comment or ""):
        raise ValidationError({field_name: ["one line only"]})


def ipset_create(*, user, target: Target, name: str, comment: str = "") -> str:
    actor = as_actor(user)
    prefix = "" if target.kind == "guest" or actor.is_operator else tenant_prefix(actor.tenant_id or 0)
    full = validation.clean_name(name, field_name="name", limit=validation.IPSET_MAX, prefix=prefix)
    if target.kind != "guest" and actor.is_operator and owner_of(full) is not None:
        raise ValidationError({"name": ["names starting with t<number>_ are kept for tenants' IP sets"]})
    _require_sets(user, target, write=True, name=full)
    _one_line(comment)

    def run():
        with _Call(target.cluster, f"create IP set {full}") as client:
            pve_fw.create_ipset(client, target.level, full, comment=comment)
        return full
    return _audited(user, "firewall.ipset_create", target.audit_target, {"where": target.label, "ipset": full}, run)


def ipset_delete(*, user, target: Target, name: str) -> None:
    """Deletes the set with its entries (Proxmox refuses while a rule still uses it)."""
    _require_sets(user, target, write=True, name=name)

    def run():
        with _Call(target.cluster, f"delete IP set {name}") as client:
            pve_fw.delete_ipset(client, target.level, name, force=True)
    _audited(user, "firewall.ipset_delete", target.audit_target, {"where": target.label, "ipset": name}, run)


def ipset_entry_add(*, user, target: Target, name: str, cidr: str, nomatch: bool = False, comment: str = "") -> str:
    _require_sets(user, target, write=True, name=name)
    _one_line(comment)
    context = rule_context(user=user, target=target) if not _is_network(cidr) else None
    value = validation.clean_cidr(cidr, aliases=context.aliases if context else {})

    def run():
        with _Call(target.cluster, f"add {value} to IP set {name}") as client:
            if any(e["cidr"] == value for e in pve_fw.ipset_entries(client, target.level, name)):
                raise ValidationError({"cidr": [f"{value} is already in {short_name(name)}"]})
            pve_fw.add_ipset_entry(client, target.level, name, value, nomatch=nomatch, comment=comment)
        return value
    return _audited(user, "firewall.ipset_entry_add", target.audit_target,
                    {"where": target.label, "ipset": name, "cidr": value, "nomatch": bool(nomatch)}, run)


def ipset_entry_delete(*, user, target: Target, name: str, cidr: str) -> None:
    _require_sets(user, target, write=True, name=name)

    def run():
        with _Call(target.cluster, f"remove {cidr} from IP set {name}") as client:
            pve_fw.delete_ipset_entry(client, target.level, name, cidr)
    _audited(user, "firewall.ipset_entry_delete", target.audit_target,
             {"where": target.label, "ipset": name, "cidr": cidr}, run)


def _is_network(text: str) -> bool:
    try:
        validation.clean_cidr(text, allow_alias=False)
        return True
    except ValidationError:
        return False


def alias_create(*, user, target: Target, name: str, cidr: str, comment: str = "") -> str:
    _require_sets(user, target, write=True, aliases=True)
    full = validation.clean_name(name, field_name="name", limit=validation.ALIAS_MAX)
    value = validation.clean_cidr(cidr, allow_alias=False)
    _one_line(comment)

    def run():
        with _Call(target.cluster, f"create alias {full}") as client:
            if any(a["name"].lower() == full.lower() for a in pve_fw.aliases(client, target.level)):
                raise ValidationError({"name": [f"alias '{full}' already exists"]})
            pve_fw.create_alias(client, target.level, full, value, comment=comment)
        return full
    return _audited(user, "firewall.alias_create", target.audit_target,
                    {"where": target.label, "alias": full, "cidr": value}, run)


def alias_delete(*, user, target: Target, name: str) -> None:
    _require_sets(user, target, write=True, aliases=True)

    def run():
        with _Call(target.cluster, f"delete alias {name}") as client:
            pve_fw.delete_alias(client, target.level, name)
    _audited(user, "firewall.alias_delete", target.audit_target, {"where": target.label, "alias": name}, run)
