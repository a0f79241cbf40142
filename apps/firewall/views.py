"""Firewall pages: a guest's Firewall tab and its effective view, a node's and the datacenter's
firewall for operators, security groups and IP sets (a tenant: its own and the shared ones).

Each page is one view: GET reads Proxmox through the services; POST carries `op` (what to do)
and calls the matching service, then redirects back (the change is visible at once) or renders
the page again with the field errors (400) or Proxmox's refusal (409/502).
"""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.mixins import LoginRequiredMixin
from django.core.exceptions import ValidationError
from django.http import Http404, HttpResponseRedirect
from django.shortcuts import render
from django.views import View

from apps.nodes.selectors import cluster_list, node_list
from apps.permissions.policy import as_actor, can
from apps.proxmox.firewall import LOG_LEVELS, POLICIES

from . import effective as fw_effective
from . import services
from .matcher import decide
from .selectors import cluster_target, guest_target, node_target
from .validation import PROTOCOLS, RULE_TYPES, VERDICTS

RULE_FORM_FIELDS = ("type", "action", "macro", "proto", "dport", "sport", "source", "dest", "iface", "log",
                    "icmp-type", "comment")


def _int(value, name: str) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        raise ValidationError({name: ["a whole number"]}) from None


def _rule_data(post) -> dict:
    data = {key: post.get(key, "") for key in RULE_FORM_FIELDS}
    data["enable"] = post.get("enable") in ("1", "on")
    return data


class FirewallPageView(LoginRequiredMixin, View):
    """`kind`: guest | node | cluster | group | groups (the security groups and IP sets page)."""

    kind = "guest"
    template_name = "firewall/rules_page.html"

    def target(self, request, **kwargs) -> services.Target:
        pk = kwargs["pk"]
        if self.kind == "guest":
            found = guest_target(user=request.user, pk=pk)
        elif self.kind == "node":
            found = node_target(user=request.user, pk=pk)
        else:
            found = cluster_target(user=request.user, pk=pk, group=kwargs.get("group"))
        if found is None:
            raise Http404("not found")
        return found

    # -- GET -----------------------------------------------------------------------------------
    def get(self, request, **kwargs):
        return self.page(request, self.target(request, **kwargs))

    def page(self, request, target, *, errors=None, values=None, status=200, refused: str = ""):
        """The page from what Proxmox answers now; when it cannot be read (unreachable, refused),
        the page still renders and says why, instead of a server error."""
        try:
            return self._page(request, target, errors=errors, values=values, status=status, refused=refused)
        except services.FirewallRefused as exc:
            return render(request, "firewall/unavailable.html",
                          {"target": target, "kind": self.kind, "guest": target.guest, "cluster": target.cluster,
                           "refused": refused, "reason": exc.message}, status=status)

    def _page(self, request, target, *, errors=None, values=None, status=200, refused: str = ""):
        user = request.user
        context = {"target": target, "kind": self.kind, "errors": errors or {}, "values": values or {},
                   "refused": refused, "log_levels": LOG_LEVELS, "policies": POLICIES, "verdicts": VERDICTS,
                   "rule_types": [t for t in RULE_TYPES if t != "forward" or self.kind in ("cluster", "node")],
                   "protocols": sorted(PROTOCOLS), "guest": target.guest, "node": target.node,
                   "cluster": target.cluster}
        if self.kind == "groups":
            services.check_cluster_visible(user, target.cluster)
            context["groups"] = services.groups_read(user=user, cluster=target.cluster)
            context["ipsets"] = services.ipsets_read(user=user, target=target)
            for item in context["ipsets"]:
                item["editable"] = services.may_write(user, services.Target("group", target.cluster, group=item["name"]))
            context["may_create"] = can(user, "firewall.manage") or (as_actor(user).tenant_id is not None
                                                                     and can(user, "firewall.edit"))
            from .defaults import default_groups

            context["defaults"] = default_groups(user=user, cluster=target.cluster)
            context["has_tenant"] = as_actor(user).tenant_id is not None and can(user, "firewall.edit")
            context["prefix"] = "" if as_actor(user).is_operator else services.tenant_prefix(as_actor(user).tenant_id or 0)
            return render(request, "firewall/groups_page.html", context, status=status)
        rules, digest = services.rules_read(user=user, target=target)
        writable = services.may_write(user, target)
        context.update(rules=rules, digest=digest, writable=writable,
                       macros=sorted(services.macros(target.cluster)) if writable else [])
        if writable and self.kind != "group":
            context["groups"] = [g for g in services.groups_read(user=user, cluster=target.cluster)]
        if self.kind != "group":
            options, options_digest = services.options_read(user=user, target=target)
            context.update(options=options, options_digest=options_digest,
                           option_fields=services.OPTION_FIELDS[target.kind])
        if self.kind in ("guest", "cluster"):
            context["ipsets"] = services.ipsets_read(user=user, target=target)
            for item in context["ipsets"]:
                item["editable"] = writable
            context["aliases"] = services.aliases_read(user=user, target=target)
        if self.kind in ("node", "guest"):
            context["log"] = services.log_read(user=user, target=target, limit=50)
        if self.kind == "guest":
            context.update(ips_context(user, target.guest), live_groups=[f"guest-{target.guest.pk}"])
        return render(request, self.template_name, context, status=status)

    # -- POST ----------------------------------------------------------------------------------
    def post(self, request, **kwargs):
        target = self.target(request, **kwargs)
        op = request.POST.get("op", "")
        handler = getattr(self, f"op_{op}", None)
        if handler is None:
            return self.page(request, target, errors={"op": [f"unknown operation '{op}'"]}, status=400)
        try:
            done = handler(request, target)
        except ValidationError as exc:
            errors = exc.message_dict if hasattr(exc, "error_dict") else {"__all__": exc.messages}
            return self.page(request, target, errors=errors, values={"op": op, **request.POST.dict()}, status=400)
        except services.FirewallRefused as exc:
            return self.page(request, target, refused=exc.message, status=exc.status)
        messages.success(request, done)
        return HttpResponseRedirect(request.get_full_path())

    def _digest(self, request):
        return request.POST.get("digest") or None

    def op_rule_create(self, request, target):
        rule = services.rule_create(user=request.user, target=target, data=_rule_data(request.POST),
                                    digest=self._digest(request))
        return f"Rule added on top: {rule['type']} {rule['action']}."

    def op_rule_update(self, request, target):
        pos = _int(request.POST.get("pos"), "pos")
        services.rule_update(user=request.user, target=target, pos=pos, data=_rule_data(request.POST),
                             digest=self._digest(request))
        return f"Rule {pos} saved."

    def op_rule_delete(self, request, target):
        pos = _int(request.POST.get("pos"), "pos")
        services.rule_delete(user=request.user, target=target, pos=pos, digest=self._digest(request))
        return f"Rule {pos} deleted."

    def op_rule_move(self, request, target):
        pos, to = _int(request.POST.get("pos"), "pos"), _int(request.POST.get("to"), "to")
        services.rule_move(user=request.user, target=target, pos=pos, to=to, digest=self._digest(request))
        return f"Rule moved from position {pos} to {to}."

    def op_rule_enable(self, request, target):
        pos = _int(request.POST.get("pos"), "pos")
        enable = request.POST.get("enable") == "1"
        services.rule_enable(user=request.user, target=target, pos=pos, enable=enable, digest=self._digest(request))
        return f"Rule {pos} {'enabled' if enable else 'disabled'}."

    def op_options(self, request, target):
        fields = services.OPTION_FIELDS[target.kind]
        values = {}
        for key, kind in fields.items():
            raw = request.POST.get(key, "")
            values[key] = ("1" if request.POST.get(key) == "1" else "0") if kind == "bool" and raw != "" else raw
        services.options_update(user=request.user, target=target, values=values,
                                digest=request.POST.get("options_digest") or None)
        return "Firewall options saved."

    def op_ips(self, request, target):
        """IPS on or off for the guest (the guest's firewall file, over the SSH channel)."""
        from . import ips

        if target.kind != "guest":
            raise ValidationError({"op": ["IPS is switched per guest"]})
        enabled = request.POST.get("enabled") == "1"
        queues = request.POST.get("queues")
        try:
            state = ips.ips_set(user=request.user, guest=target.guest, enabled=enabled,
                                queues=queues.strip() if queues is not None else None,
                                digest=request.POST.get("ips_digest") or None)
        except ips.IpsRefused as exc:
            raise services.FirewallRefused(exc.message, status=exc.status) from exc
        return f"IPS {'on' if state.enabled else 'off'} for {target.guest}" + (
            f" (queues {state.queues})." if state.queues else ".")

    def op_group_create(self, request, target):
        name = services.group_create(user=request.user, cluster=target.cluster, name=request.POST.get("name", ""),
                                     comment=request.POST.get("comment", ""))
        return f"Security group {name} created."

    def op_defaults(self, request, target):
        from .defaults import default_groups_set

        chosen = default_groups_set(user=request.user, cluster=target.cluster, groups=request.POST.getlist("default"))
        return f"New guests get: {', '.join(chosen) or 'no security group'}."

    def op_group_delete(self, request, target):
        name = request.POST.get("name", "")
        services.group_delete(user=request.user, cluster=target.cluster, name=name)
        return f"Security group {name} deleted."

    def _sets_target(self, target):
        return services.Target("cluster", target.cluster) if target.kind == "group" else target

    def op_ipset_create(self, request, target):
        name = services.ipset_create(user=request.user, target=self._sets_target(target),
                                     name=request.POST.get("name", ""), comment=request.POST.get("comment", ""))
        return f"IP set {name} created."

    def op_ipset_delete(self, request, target):
        name = request.POST.get("name", "")
        services.ipset_delete(user=request.user, target=self._sets_target(target), name=name)
        return f"IP set {name} deleted."

    def op_entry_add(self, request, target):
        name = request.POST.get("name", "")
        cidr = services.ipset_entry_add(user=request.user, target=self._sets_target(target), name=name,
                                        cidr=request.POST.get("cidr", ""), nomatch=request.POST.get("nomatch") == "1",
                                        comment=request.POST.get("comment", ""))
        return f"{cidr} added to {services.short_name(name)}."

    def op_entry_delete(self, request, target):
        name, cidr = request.POST.get("name", ""), request.POST.get("cidr", "")
        services.ipset_entry_delete(user=request.user, target=self._sets_target(target), name=name, cidr=cidr)
        return f"{cidr} removed from {services.short_name(name)}."

    def op_alias_create(self, request, target):
        name = services.alias_create(user=request.user, target=target, name=request.POST.get("name", ""),
                                     cidr=request.POST.get("cidr", ""), comment=request.POST.get("comment", ""))
        return f"Alias {name} created."

    def op_alias_delete(self, request, target):
        name = request.POST.get("name", "")
        services.alias_delete(user=request.user, target=target, name=name)
        return f"Alias {name} deleted."


class EffectivePageView(LoginRequiredMixin, View):
    """The guest's effective rules, and with ?address= the first rule that decides that packet."""

    def get(self, request, pk):
        target = guest_target(user=request.user, pk=pk)
        if target is None:
            raise Http404("not found")
        try:
            view, resolver = fw_effective.effective_read(user=request.user, guest=target.guest)
        except services.FirewallRefused as exc:
            return render(request, "firewall/unavailable.html",
                          {"target": target, "kind": "guest", "guest": target.guest, "cluster": target.cluster,
                           "reason": exc.message})
        decision, errors = None, {}
        direction = request.GET.get("direction", "in") if request.GET.get("direction") in ("in", "out") else "in"
        if request.GET.get("address") or request.GET.get("port"):
            try:
                decision = decide(view, fw_effective.parse_query(request.GET), resolver)
            except ValidationError as exc:
                errors = exc.message_dict
        context = {"guest": target.guest, "view": view, "decision": decision, "errors": errors,
                   "direction": direction, "query": request.GET,
                   "sections": [(d, fw_effective.view_rows(view, decision if d == direction else None, d))
                                for d in ("in", "out")]}
        return render(request, "firewall/effective.html", context, status=400 if errors else 200)


class FirewallIndexView(LoginRequiredMixin, View):
    """Where the firewall pages are: per cluster the datacenter's and nodes' (operators, auditors),
    and the security groups and IP sets (everyone: a tenant its own)."""

    def get(self, request):
        clusters = list(cluster_list(user=request.user))
        nodes = list(node_list(user=request.user).order_by("name")) if services.may_see_datacenter(request.user) else []
        return render(request, "firewall/index.html", {
            "clusters": clusters, "nodes": nodes, "datacenter": services.may_see_datacenter(request.user)})


# -- IPS (Suricata) ---------------------------------------------------------------------------------

def ips_context(user, guest) -> dict:
    """The guest page's IPS card: state read from the guest's firewall file (or why not), and its
    last alerts with their count per hour."""
    from . import ips

    alerts = ips.alerts_visible(user=user).filter(guest=guest)
    return {"ips": ips.ips_read(user=user, guest=guest), "ips_alerts": list(alerts[:20]),
            "ips_counts": ips.alert_counts(alerts), "channel_url_visible": services.may_see_datacenter(user)}


class IpsAlertsFragmentView(LoginRequiredMixin, View):
    """The guest's alert card alone (the card's refresh button; live pushes send the same)."""

    def get(self, request, pk):
        from . import ips

        target = guest_target(user=request.user, pk=pk)
        if target is None:
            raise Http404("not found")
        alerts = ips.alerts_visible(user=request.user).filter(guest=target.guest)
        return render(request, "firewall/partials/ips_alerts.html", {
            "guest": target.guest, "alerts": list(alerts[:20]), "counts": ips.alert_counts(alerts)})


class IpsAlertsPageView(LoginRequiredMixin, View):
    """Every alert the user may see (a tenant: its guests'), newest first, with counts per hour."""

    def get(self, request):
        from . import ips

        found = ips.alerts_visible(user=request.user)
        cluster = request.GET.get("cluster", "")
        if cluster.isdigit():
            found = found.filter(cluster_id=int(cluster))
        return render(request, "firewall/ips_alerts.html", {
            "alerts": list(found[:200]), "counts": ips.alert_counts(found), "total": found.count(),
            "clusters": list(cluster_list(user=request.user)), "cluster": cluster,
            "everything": services.may_see_datacenter(request.user)})


class SshChannelView(LoginRequiredMixin, View):
    """A cluster's SSH channel for IPS: operators set it up (auditors read, tenants 404)."""

    def cluster(self, request, pk, *, write: bool):
        from apps.nodes.selectors import cluster_get
        from apps.permissions.policy import check

        cluster = cluster_get(user=request.user, pk=pk)
        if cluster is None or not services.may_see_datacenter(request.user):
            raise Http404("not found")
        check(request.user, "firewall.manage" if write else "firewall.datacenter_view", cluster)
        return cluster

    def page(self, request, cluster, *, errors=None, refused="", results=None, status=200):
        from . import ips

        channel = ips.channel_of(cluster)
        return render(request, "firewall/ssh_channel.html", {
            "cluster": cluster, "channel": channel, "hosts": ips.hosts_view(channel) if channel else [],
            "reason": ips.unavailable_reason(cluster, channel), "writable": can(request.user, "firewall.manage"),
            "errors": errors or {}, "refused": refused, "results": results}, status=status)

    def get(self, request, pk):
        return self.page(request, self.cluster(request, pk, write=False))

    def post(self, request, pk):
        from . import ips

        cluster = self.cluster(request, pk, write=True)
        channel = ips.channel_of(cluster)
        op = request.POST.get("op", "")
        try:
            if op == "create":
                ips.channel_create(user=request.user, cluster=cluster, username=request.POST.get("username") or "root",
                                   port=request.POST.get("port") or 22,
                                   trust_on_first_use=request.POST.get("trust_on_first_use") == "1")
                done = "SSH channel created: install its public key for root on the nodes."
            elif channel is None:
                raise Http404("this cluster has no SSH channel")
            elif op == "update":
                ips.channel_update(user=request.user, channel=channel, username=request.POST.get("username"),
                                   port=request.POST.get("port"), enabled=request.POST.get("enabled") == "1",
                                   trust_on_first_use=request.POST.get("trust_on_first_use") == "1")
                done = "SSH channel saved."
            elif op == "new_key":
                ips.channel_new_key(user=request.user, channel=channel)
                done = "New key pair made: install the new public key on the nodes and remove the old one."
            elif op == "delete":
                ips.channel_delete(user=request.user, channel=channel)
                done = "SSH channel removed: remove its public key from the nodes."
            elif op == "host":
                node = request.POST.get("node", "")
                ips.host_update(user=request.user, channel=channel, node=node, address=request.POST.get("address", ""),
                                port=request.POST.get("port", ""), host_key=request.POST.get("host_key") or None)
                done = f"Node {node} saved."
            elif op == "scan":
                node = request.POST.get("node", "")
                host = ips.host_scan(user=request.user, channel=channel, node=node)
                from apps.proxmox import nodefs

                done = f"Host key of {node} pinned: {nodefs.fingerprint(host.host_key)}."
            elif op == "forget":
                node = request.POST.get("node", "")
                ips.host_forget(user=request.user, channel=channel, node=node)
                done = f"Host key of {node} forgotten."
            elif op == "test":
                results = ips.channel_test(user=request.user, channel=channel)
                return self.page(request, cluster, results=results)
            elif op == "read":
                result = ips.alerts_ingest(cluster.pk)
                done = (f"Alerts read: {result.stored} new." if not result.skipped
                        else f"Nothing read: {result.skipped}.")
            else:
                return self.page(request, cluster, errors={"op": [f"unknown operation '{op}'"]}, status=400)
        except ValidationError as exc:
            errors = exc.message_dict if hasattr(exc, "error_dict") else {"__all__": exc.messages}
            return self.page(request, cluster, errors=errors, status=400)
        except ips.IpsRefused as exc:
            return self.page(request, cluster, refused=exc.message, status=exc.status)
        messages.success(request, done)
        return HttpResponseRedirect(request.get_full_path())
