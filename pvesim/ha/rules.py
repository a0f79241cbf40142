"""HA rules: feasibility checks, digest, migration of legacy groups into node-affinity rules."""

from __future__ import annotations


from .common import config_digest


class RulesMixin:
    """HA rules: feasibility checks, digest, migration of legacy groups into node-affinity rules."""

    # ---- rules --------------------------------------------------------------------------------
    def effective_rules(self) -> dict[str, dict]:
        """Enabled rules with infeasible ones dropped (what the CRM applies)."""
        errors = self.rule_errors()
        return {rid: r for rid, r in self.rules.items() if not r.get("disable") and rid not in errors}

    def rule_errors(self, rules: dict[str, dict] | None = None) -> dict[str, dict[str, list[str]]]:
        """Feasibility checks of pve-ha-manager's Rules plugins: ruleid -> {option: [messages]}."""
        rules = self.rules if rules is None else rules
        enabled = {rid: r for rid, r in rules.items() if not r.get("disable")}
        node_aff = {rid: r for rid, r in enabled.items() if r["type"] == "node-affinity"}
        res_aff = {rid: r for rid, r in enabled.items() if r["type"] == "resource-affinity"}
        positive = {rid: r for rid, r in res_aff.items() if r.get("affinity") == "positive"}
        negative = {rid: r for rid, r in res_aff.items() if r.get("affinity") == "negative"}
        errors: dict[str, dict[str, list[str]]] = {}

        def add(rid, msg, opt="resources"):
            errors.setdefault(rid, {}).setdefault(opt, []).append(msg)

        users: dict[str, list[str]] = {}
        for rid, r in node_aff.items():
            for sid in r["resources"]:
                users.setdefault(sid, []).append(rid)
        for sid, rids in sorted(users.items()):
            if len(rids) > 1:
                for rid in sorted(rids):
                    add(rid, f"resource '{sid}' is already used in another node affinity rule")
        for rid, r in sorted(res_aff.items()):
            if len(r["resources"]) < 2:
                add(rid, "rule is ineffective as there are less than two resources")
        for rid, r in sorted(negative.items()):
            if len(r["resources"]) > len(self.cluster.nodes):
                add(rid, "rule defines more resources than available nodes")
        for pid, pr in sorted(positive.items()):
            for nid, nr in sorted(negative.items()):
                if len(pr["resources"] & nr["resources"]) >= 2:
                    add(pid, "rule shares two or more resources with a negative resource affinity rule")
                    add(nid, "rule shares two or more resources with a positive resource affinity rule")
        for rid, r in sorted(res_aff.items()):
            paired = [nid for nid, nr in node_aff.items() if r["resources"] & nr["resources"]]
            if any(len(set(node_aff[nid]["nodes"].values())) > 1 for nid in paired):
                add(rid, "resources are in node affinity rules with multiple priorities")
                for nid in sorted(paired):
                    add(nid, "resources are in a resource affinity rule and cannot be in a node affinity rule with multiple priorities")
        for rid, r in sorted(positive.items()):
            paired = [nid for nid, nr in node_aff.items() if r["resources"] & nr["resources"]]
            if len(paired) > 1:
                add(rid, "resources are in multiple node affinity rules")
                for nid in sorted(paired):
                    add(nid, "at least one resource is in a positive resource affinity rule and there are other "
                             "resources in at least one other node affinity rule already")
        for rid, r in sorted(negative.items()):
            allowed, located, paired = set(), set(), []
            for nid, nr in node_aff.items():
                common = r["resources"] & nr["resources"]
                if common:
                    located |= common
                    allowed |= set(nr["nodes"])
                    paired.append(nid)
            if len(allowed) < len(located):
                add(rid, "two or more resources are restricted to less nodes than available to the resources")
                for nid in sorted(paired):
                    add(nid, "at least one resource is in a negative resource affinity rule and this rule would "
                             "restrict these to less nodes than available to the resources")
        return errors

    def rules_digest(self) -> str:
        return config_digest(self.rules)

    # ---- legacy groups ----------------------------------------------------------------------
    def _maybe_migrate_groups(self) -> None:
        """Once every node's LRM is up (all nodes run 9.x here), turn groups into node-affinity rules."""
        if not self.groups:
            return
        if any(self.node_status.get(n) != "online" or not self.lrm.get(n, {}).get("timestamp") for n in self.cluster.nodes):
            return
        order = max((r.get("order", 0) for r in self.rules.values()), default=0)
        for group, g in sorted(self.groups.items()):
            members = {sid for sid, conf in self.resources.items() if conf.get("group") == group}
            ruleid = f"ha-group-{group}"
            if members and ruleid not in self.rules:
                order += 1
                self.rules[ruleid] = {"type": "node-affinity", "resources": members, "nodes": dict(g["nodes"]),
                                      "strict": 1 if g.get("restricted") else 0, "order": order,
                                      "comment": f"Generated from HA group '{group}'."}
            for sid in members:
                conf = self.resources[sid]
                conf.pop("group", None)
                conf["failback"] = 0 if g.get("nofailback") else 1
        self._log(self.master_node, "HA groups migrated to HA node affinity rules: " + ", ".join(sorted(self.groups)))
        self.groups.clear()
