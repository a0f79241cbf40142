"""Resources configuration (resources.cfg), CRM requests, arming, and the state helpers the loops share."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..errors import ApiError
from .common import RESOURCE_DEFAULTS, RESOURCE_KEYS, _uid, config_digest

if TYPE_CHECKING:
    from ..state import Guest

class ConfigMixin:
    """Resources configuration (resources.cfg), CRM requests, arming, and the state helpers the loops share."""

    # ---- helpers ---------------------------------------------------------------------------
    def _log(self, node: str | None, msg: str, severity: int = 6, tag: str = "pve-ha-crm") -> None:
        self.cluster.log_event(node or self.cluster.local_node, "root@pam", msg, severity)
        self.cluster.events[-1]["tag"] = tag

    def _set_state(self, sid: str, state: str, **extra) -> None:
        ss = self.service_status[sid]
        old = ss["state"]
        if old != state:
            detail = "".join(f"  ({k} = {v})" for k, v in extra.items()
                             if v and (k == "target" or (k == "node" and (v != ss.get("node") or old == "recovery"))))
            self._log(self.master_node, f"service '{sid}': state changed from '{old}' to '{state}'{detail}")
        ss["state"] = state
        ss["uid"] = _uid()
        for key in ("running", "target"):
            ss.pop(key, None)
        for key, value in extra.items():
            if value is None:
                ss.pop(key, None)
            else:
                ss[key] = value

    def _set_node_state(self, node: str, state: str) -> None:
        old = self.node_status.get(node)
        if old != state:
            self._log(self.master_node, f"node '{node}': state changed from '{old}' => '{state}'")
        self.node_status[node] = state

    def _guest(self, sid: str) -> "Guest | None":
        kind, _, name = sid.partition(":")
        guest = self.cluster.guests.get(int(name)) if name.isdigit() else None
        if guest is None or guest.type != ("qemu" if kind == "vm" else "lxc"):
            return None
        return guest

    def resource_conf(self, sid: str) -> dict:
        """The resource config with defaults filled in (read_and_check_resources_config)."""
        conf = {**RESOURCE_DEFAULTS, **self.resources[sid]}
        if conf["state"] == "enabled":
            conf["state"] = "started"
        return conf

    # ---- resources (API and guests engineer) -------------------------------------------------
    def resolve_sid(self, sid: str) -> str:
        """`100` -> `vm:100`/`ct:100` as parse_sid does; raises PVE's errors."""
        sid = str(sid).strip()
        if sid.isdigit():
            guest = self.cluster.guests.get(int(sid))
            if guest is None:
                raise ApiError(500, f"unable do detect SID from VMID - VM/CT {sid} does not exist")
            return f"{'vm' if guest.type == 'qemu' else 'ct'}:{sid}"
        kind, sep, name = sid.partition(":")
        if not sep or not kind or not name or " " in sid:
            raise ApiError(500, f"unable to parse service id '{sid}'")
        return sid

    def sid_for(self, vmid: int) -> str | None:
        """The HA resource id managing a guest, or None."""
        for kind in ("vm", "ct"):
            if f"{kind}:{vmid}" in self.resources:
                return f"{kind}:{vmid}"
        return None

    def is_managed(self, sid: str) -> bool:
        """Whether HA manages `sid` (an `ignored` resource behaves as unmanaged, as in PVE)."""
        conf = self.resources.get(sid)
        return conf is not None and conf.get("state") != "ignored"

    def add_resource(self, sid, **opts) -> str:
        """Manage a guest by HA (`ha-manager add`); returns the normalized sid."""
        with self.cluster.lock:
            sid = self.resolve_sid(sid)
            kind, _, name = sid.partition(":")
            if kind not in ("vm", "ct"):
                raise ApiError(500, f"unknown resource type '{kind}'")
            if opts.get("type") and opts["type"] != kind:
                raise ApiError(500, "types does not match")
            if not name.isdigit() or self._guest(sid) is None:
                raise ApiError(500, f"resource '{sid}' does not exist in cluster")
            self._check_group_param(opts)
            if sid in self.resources:
                raise ApiError(500, f"create resource failed: cfs-lock 'domain-ha' error: resource ID '{sid}' already defined")
            conf = {"type": kind, "state": opts.get("state") or "started"}
            for key in RESOURCE_KEYS:
                if opts.get(key) is not None and key != "state":
                    conf[key] = opts[key]
            self.resources[sid] = conf
            return sid

    def update_resource(self, sid, opts: dict, delete: list[str] | None = None, digest: str | None = None) -> None:
        with self.cluster.lock:
            sid = self.resolve_sid(sid)
            if opts.get("type") and opts["type"] != sid.split(":")[0]:
                raise ApiError(500, "types does not match")
            self._check_group_param(opts)
            self._check_error_state(sid, opts.get("state"))
            prefix = "update resource failed: cfs-lock 'domain-ha' error: "
            if digest and digest != self.resources_digest():
                raise ApiError(500, prefix + "detected modified configuration - file changed by other user? Try again.")
            conf = self.resources.get(sid)
            if conf is None:
                raise ApiError(500, prefix + f"no such resource '{sid}'")
            for key in RESOURCE_KEYS:
                if opts.get(key) is not None:
                    conf[key] = opts[key]
            for key in delete or []:
                if key not in RESOURCE_KEYS:
                    raise ApiError(500, prefix + f"no such option '{key}'")
                conf.pop(key, None)
            conf.setdefault("state", "started")

    def remove_resource(self, sid, purge: bool = True) -> None:
        """Stop managing a guest (the guest itself stays as it is); `purge` also drops it from
        rules, deleting rules left without resources."""
        with self.cluster.lock:
            sid = self.resolve_sid(sid)
            if sid not in self.resources:
                raise ApiError(500, f"resource '{sid}' is not HA managed")
            del self.resources[sid]
            if purge:
                for ruleid, rule in list(self.rules.items()):
                    if sid in rule["resources"]:
                        rule["resources"].discard(sid)
                        if not rule["resources"]:
                            del self.rules[ruleid]

    def request_state(self, sid, state: str) -> None:
        """`ha-manager set <sid> --state <state>` (what hastart/hastop do)."""
        self.update_resource(sid, {"state": state})

    def _check_error_state(self, sid: str, req_state: str | None) -> None:
        ss = self.service_status.get(sid)
        if sid in self.resources and ss and ss["state"] == "error" and req_state != "disabled":
            raise ApiError(500, f"service '{sid}' in error state, must be disabled and fixed first")

    def _check_group_param(self, opts: dict) -> None:
        group = opts.get("group")
        if not group:
            return
        if not self.groups:
            raise ApiError(500, "invalid parameter 'group': ha groups have been migrated to rules")
        if group not in self.groups:
            raise ApiError(500, f"HA group '{group}' does not exist")

    def resources_digest(self) -> str:
        return config_digest(self.resources)

    def migrate(self, sid, node: str, kind: str = "migrate") -> dict:
        """Queue a `migrate`/`relocate` crm command; returns what the API answers."""
        with self.cluster.lock:
            sid = self.resolve_sid(sid)
            conf = self.resources.get(sid)
            if conf is None or conf.get("state") == "ignored":
                raise ApiError(500, f"resource '{sid}' is not HA managed")
            self._check_error_state(sid, None)
            self.cluster.node(node)
            together, separate = self._affinitive(sid)
            blocking = []
            for csid in sorted(separate):
                css = self.service_status.get(csid)
                if css and node in (css.get("node"), css.get("target")):
                    blocking.append({"sid": csid, "cause": "resource-affinity"})
            out = {"sid": sid, "requested-node": node}
            if blocking:
                out["blocking-resources"] = blocking
                return out
            comigrated = sorted(c for c in together if c in self.service_status)
            if comigrated:
                out["comigrated-resources"] = comigrated
            self.commands.append((kind, sid, node))
            for csid in comigrated:
                self.commands.append((kind, csid, node))
            return out

    def disarm_ha(self, mode: str) -> None:
        with self.cluster.lock:
            self.commands.append(("disarm-ha", mode))

    def arm_ha(self) -> None:
        with self.cluster.lock:
            self.commands.append(("arm-ha",))

    # ---- what /cluster/resources shows --------------------------------------------------------
    def service_state(self, sid: str) -> str | None:
        if sid not in self.resources:
            return None
        ss = self.service_status.get(sid)
        return ss["state"] if ss else self.resource_conf(sid)["state"]

    def node_state(self, node: str) -> str | None:
        return self.node_status.get(node) if self.resources else None
