"""Where a service may and should run: affinity rules, node load, select_node."""

from __future__ import annotations


from .common import ACTIVE_STATES


class PlacementMixin:
    """Where a service may and should run: affinity rules, node load, select_node."""

    # ---- placement ----------------------------------------------------------------------------
    def _affinitive(self, sid: str) -> tuple[set[str], set[str]]:
        together, separate = set(), set()
        for rule in self.effective_rules().values():
            if rule["type"] == "resource-affinity" and sid in rule["resources"]:
                (together if rule["affinity"] == "positive" else separate).update(rule["resources"] - {sid})
        return together, separate

    def _node_affinity(self, sid: str) -> tuple[dict[str, int], bool] | None:
        """(node -> priority, strict) of the rule placing `sid`, or None."""
        for rule in sorted(self.effective_rules().values(), key=lambda r: r.get("order", 0)):
            if rule["type"] != "node-affinity" or sid not in rule["resources"]:
                continue
            return dict(rule["nodes"]), bool(rule.get("strict"))
        together, _ = self._affinitive(sid)  # positive partners share their node affinity
        for csid in sorted(together):
            for rule in self.effective_rules().values():
                if rule["type"] == "node-affinity" and csid in rule["resources"]:
                    return dict(rule["nodes"]), bool(rule.get("strict"))
        return None

    def _load(self, node: str, exclude: str) -> tuple:
        count = sum(1 for sid, ss in self.service_status.items()
                    if sid != exclude and node in (ss.get("node"), ss.get("target")) and ss["state"] in ACTIVE_STATES)
        n = self.cluster.nodes[node]
        mem = sum(g.maxmem() for g in self.cluster.guests.values() if g.node == node and g.status == "running")
        return count, mem / max(n.maxmem, 1), node

    def select_node(self, sid: str, current: str | None, mode: str = "none", exclude: set[str] = frozenset()) -> str | None:
        """select_service_node: the best allowed online node for `sid`.

        mode "none" keeps `current` if it is among the best allowed nodes (or allowed at all
        when failback is off), "try-next" never picks an excluded (failed) node."""
        online = [n for n, st in self.node_status.items() if st == "online"]
        affinity = self._node_affinity(sid)
        prio: dict[str, int] = {}
        for node in online:
            if affinity is None:
                prio[node] = 0
            elif node in affinity[0]:
                prio[node] = affinity[0][node]
            elif not affinity[1]:
                prio[node] = -1  # non-strict: any other node as a last resort
        together, separate = self._affinitive(sid)
        def placed(css):  # a service on its way out counts at its target only
            return css.get("target") if css["state"] in ("migrate", "relocate") else css.get("node")

        banned = set()
        for csid in separate:
            css = self.service_status.get(csid)
            if css and css["state"] in ACTIVE_STATES:
                banned.add(placed(css))
        wanted = set()
        for csid in together:
            css = self.service_status.get(csid)
            if css and css["state"] in ACTIVE_STATES and placed(css) in prio:
                wanted.add(placed(css))
        candidates = {n: p for n, p in prio.items() if n not in banned and n not in exclude}
        if wanted and candidates.keys() & wanted:
            candidates = {n: p for n, p in candidates.items() if n in wanted}
        if not candidates:
            return None
        top = max(candidates.values())
        best = [n for n, p in candidates.items() if p == top]
        if mode == "none" and current in candidates:
            failback = self.resource_conf(sid).get("failback", 1) if sid in self.resources else 1
            if current in best or not failback:
                return current
        return min(best, key=lambda n: self._load(n, sid))
