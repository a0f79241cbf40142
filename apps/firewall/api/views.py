"""The firewall API: one set of views serves a guest, a node, the datacenter and its security groups.

Every view finds its target through a scoped selector first (404 when the caller may not see it),
then calls a service, which asks the policy (404 / 403), validates (400 field map) and talks to
Proxmox (409 / 502 with Proxmox's message when it refuses). Writes answer 200 with what was done:
Proxmox's firewall calls are synchronous, there is no operation to follow.
"""

from __future__ import annotations

from django.http import Http404
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework.response import Response
from rest_framework.views import APIView

from apps.core.api.schema import AutoSchema, ErrorSerializer

from .. import effective as fw_effective
from .. import services
from ..matcher import decide
from ..selectors import cluster_target, guest_target, node_target
from . import serializers as s

UNREACHABLE = OpenApiResponse(ErrorSerializer, description="Proxmox could not be reached.")


class FirewallSchema(AutoSchema):
    """Every firewall call reads Proxmox: a name Proxmox refuses is a 400, Proxmox refusing a 409,
    Proxmox unreachable a 502, whatever the method. Operation ids tell an IP set's entries apart."""

    def error_status_codes(self) -> list[int]:
        return sorted(set(super().error_status_codes()) | {400, 409})

    def _get_response_bodies(self, direction="response"):
        responses = super()._get_response_bodies(direction)
        if direction == "response" and "502" not in responses:
            responses["502"] = self._get_response_for_code(UNREACHABLE, "502", direction=direction)
        return responses

    def get_operation_id(self):
        base = super().get_operation_id()
        if self.path.rstrip("/").endswith("{cidr}"):
            return base.replace("_ipsets_", "_ipset_entry_")
        if self.path.rstrip("/").endswith("{name}"):
            return base.replace("_ipsets_", "_ipset_").replace("_aliases_", "_alias_")
        return base


class FirewallAPIView(APIView):
    """`kind` (guest | node | cluster | group) says which URL parameter names the target."""

    kind = "guest"
    schema = FirewallSchema()

    def target(self) -> services.Target:
        user, pk = self.request.user, self.kwargs["pk"]
        if self.kind == "guest":
            found = guest_target(user=user, pk=pk)
        elif self.kind == "node":
            found = node_target(user=user, pk=pk)
        else:
            found = cluster_target(user=user, pk=pk, group=self.kwargs.get("group") if self.kind == "group" else None)
        if found is None:
            raise Http404("not found")
        return found

    def handle_exception(self, exc):
        if isinstance(exc, services.FirewallRefused):
            return Response({"detail": exc.message, "proxmox_message": exc.proxmox_message}, status=exc.status)
        return super().handle_exception(exc)

    def body(self, serializer_class):
        checked = serializer_class(data=self.request.data)
        checked.is_valid(raise_exception=True)
        return checked.validated_data


def _digest(data) -> str | None:
    return (data.get("digest") or "").strip() or None


class RuleListAPIView(FirewallAPIView):
    """GET: the rules in evaluation order with the file's `digest`. POST: add one (on top unless `pos`)."""

    @extend_schema(request=None, responses={200: dict})
    def get(self, request, **kwargs):
        target = self.target()
        rules, digest = services.rules_read(user=request.user, target=target)
        return Response({"count": len(rules), "digest": digest, "results": rules})

    @extend_schema(request=s.RuleSerializer, responses={201: dict})
    def post(self, request, **kwargs):
        target = self.target()
        data = self.body(s.RuleSerializer)
        rule = services.rule_create(user=request.user, target=target, data=data, pos=data.get("pos"),
                                    digest=_digest(data))
        return Response(rule, status=201)


class RuleAPIView(FirewallAPIView):
    """PUT/PATCH: replace the rule at `pos` (fields left out are cleared). DELETE: remove it."""

    @extend_schema(request=s.RuleSerializer, responses={200: dict})
    def put(self, request, pos, **kwargs):
        target = self.target()
        data = self.body(s.RuleSerializer)
        return Response(services.rule_update(user=request.user, target=target, pos=pos, data=data,
                                             digest=_digest(data)))

    patch = put

    @extend_schema(request=None, responses={204: None})
    def delete(self, request, pos, **kwargs):
        target = self.target()
        services.rule_delete(user=request.user, target=target, pos=pos, digest=request.query_params.get("digest"))
        return Response(status=204)


class RuleMoveAPIView(FirewallAPIView):
    """POST {"to": n}: the rule at `pos` ends up at position n."""

    @extend_schema(request=s.MoveSerializer, responses={200: dict})
    def post(self, request, pos, **kwargs):
        target = self.target()
        data = self.body(s.MoveSerializer)
        services.rule_move(user=request.user, target=target, pos=pos, to=data["to"], digest=_digest(data))
        return Response({"pos": data["to"]})


class RuleEnableAPIView(FirewallAPIView):
    """POST {"enable": true|false}: switch the rule at `pos` on or off."""

    @extend_schema(request=s.EnableSerializer, responses={200: dict})
    def post(self, request, pos, **kwargs):
        target = self.target()
        data = self.body(s.EnableSerializer)
        services.rule_enable(user=request.user, target=target, pos=pos, enable=data["enable"], digest=_digest(data))
        return Response({"pos": pos, "enable": data["enable"]})


class OptionsAPIView(FirewallAPIView):
    """GET: the level's firewall options (unset ones are absent: Proxmox's default applies). PATCH: change."""

    @extend_schema(request=None, responses={200: dict})
    def get(self, request, **kwargs):
        options, digest = services.options_read(user=request.user, target=self.target())
        return Response({"options": options, "digest": digest})

    @extend_schema(request=s.OptionsSerializer, responses={200: dict})
    def patch(self, request, **kwargs):
        target = self.target()
        data = self.body(s.OptionsSerializer)
        done = services.options_update(user=request.user, target=target, values=dict(data["values"]),
                                       digest=_digest(data))
        return Response({"set": done})

    put = patch


class EffectiveAPIView(FirewallAPIView):
    """The guest's effective rules per direction; with ?address=&proto=&port=&direction= also
    which row decides that packet (`decision`)."""

    @extend_schema(request=None, responses={200: dict}, parameters=[
        OpenApiParameter("address", str, description="the other side's IP address (asks the question)"),
        OpenApiParameter("proto", str, enum=["tcp", "udp", "icmp", "icmpv6", "sctp"]),
        OpenApiParameter("port", int, description="destination port"),
        OpenApiParameter("direction", str, enum=["in", "out"]),
        OpenApiParameter("local", str, description="the guest's own address, when rules depend on it")])
    def get(self, request, **kwargs):
        target = self.target()
        view, resolver = fw_effective.effective_read(user=request.user, guest=target.guest)
        decision = None
        if request.query_params.get("address"):
            query = fw_effective.parse_query(request.query_params)
            decision = decide(view, query, resolver)
        body = {"active": view.active, "reasons": view.reasons, "notes": view.notes,
                "in": fw_effective.view_rows(view, decision if decision and request.query_params.get(
                    "direction", "in") == "in" else None, "in"),
                "out": fw_effective.view_rows(view, decision if decision and request.query_params.get(
                    "direction") == "out" else None, "out")}
        if decision is not None:
            body["decision"] = {"verdict": decision.verdict, "row": decision.row, "text": decision.text,
                                "undecided": [{"row": n, "why": why} for n, why in decision.unknown]}
        return Response(body)


class GroupListAPIView(FirewallAPIView):
    """GET: the security groups the caller may see (shared ones, and their tenant's). POST {name}:
    create one (a tenant's gets its tenant's prefix)."""

    kind = "cluster"

    @extend_schema(request=None, responses={200: dict})
    def get(self, request, **kwargs):
        target = self.target()
        groups = services.groups_read(user=request.user, cluster=target.cluster)
        return Response({"count": len(groups), "results": groups})

    @extend_schema(request=s.NameSerializer, responses={201: dict})
    def post(self, request, **kwargs):
        target = self.target()
        data = self.body(s.NameSerializer)
        name = services.group_create(user=request.user, cluster=target.cluster, name=data["name"],
                                     comment=data.get("comment", ""))
        return Response({"group": name}, status=201)


class GroupAPIView(FirewallAPIView):
    """DELETE: remove an empty security group nobody uses."""

    kind = "group"

    @extend_schema(request=None, responses={204: None})
    def delete(self, request, **kwargs):
        target = self.target()
        services.group_delete(user=request.user, cluster=target.cluster, name=target.group)
        return Response(status=204)


class IpSetListAPIView(FirewallAPIView):
    """GET: IP sets with their entries. POST {name, comment}: create one."""

    @extend_schema(request=None, responses={200: dict})
    def get(self, request, **kwargs):
        sets = services.ipsets_read(user=request.user, target=self.target())
        return Response({"count": len(sets), "results": sets})

    @extend_schema(request=s.NameSerializer, responses={201: dict})
    def post(self, request, **kwargs):
        target = self.target()
        data = self.body(s.NameSerializer)
        name = services.ipset_create(user=request.user, target=target, name=data["name"],
                                     comment=data.get("comment", ""))
        return Response({"name": name}, status=201)


class IpSetAPIView(FirewallAPIView):
    """POST {cidr, nomatch, comment}: add an entry. DELETE: remove the set and its entries."""

    @extend_schema(request=s.EntrySerializer, responses={201: dict})
    def post(self, request, name, **kwargs):
        target = self.target()
        data = self.body(s.EntrySerializer)
        cidr = services.ipset_entry_add(user=request.user, target=target, name=name, cidr=data["cidr"],
                                        nomatch=data["nomatch"], comment=data.get("comment", ""))
        return Response({"cidr": cidr, "nomatch": data["nomatch"]}, status=201)

    @extend_schema(request=None, responses={204: None})
    def delete(self, request, name, **kwargs):
        services.ipset_delete(user=request.user, target=self.target(), name=name)
        return Response(status=204)


class IpSetEntryAPIView(FirewallAPIView):
    """DELETE: remove one entry (its address or network as listed)."""

    @extend_schema(request=None, responses={204: None})
    def delete(self, request, name, cidr, **kwargs):
        services.ipset_entry_delete(user=request.user, target=self.target(), name=name, cidr=cidr)
        return Response(status=204)


class AliasListAPIView(FirewallAPIView):
    """GET: aliases. POST {name, cidr, comment}: create one."""

    @extend_schema(request=None, responses={200: dict})
    def get(self, request, **kwargs):
        found = services.aliases_read(user=request.user, target=self.target())
        return Response({"count": len(found), "results": found})

    @extend_schema(request=s.AliasSerializer, responses={201: dict})
    def post(self, request, **kwargs):
        target = self.target()
        data = self.body(s.AliasSerializer)
        name = services.alias_create(user=request.user, target=target, name=data["name"], cidr=data["cidr"],
                                     comment=data.get("comment", ""))
        return Response({"name": name}, status=201)


class AliasAPIView(FirewallAPIView):
    @extend_schema(request=None, responses={204: None})
    def delete(self, request, name, **kwargs):
        services.alias_delete(user=request.user, target=self.target(), name=name)
        return Response(status=204)


class LogAPIView(FirewallAPIView):
    """GET: the firewall log of a guest or a node (`limit` lines, default 200)."""

    @extend_schema(request=None, responses={200: dict},
                   parameters=[OpenApiParameter("limit", int, description="lines, 1-5000 (default 200)")])
    def get(self, request, **kwargs):
        try:
            limit = max(1, min(int(request.query_params.get("limit", 200)), 5000))
        except ValueError:
            limit = 200
        lines = services.log_read(user=request.user, target=self.target(), limit=limit)
        return Response({"count": len(lines), "results": lines})


class DefaultGroupsAPIView(FirewallAPIView):
    """The caller's tenant's default security groups on this cluster: every guest the portal
    creates for the tenant there gets them as group rules. PUT {"groups": [...]} replaces them."""

    kind = "cluster"

    @extend_schema(request=None, responses={200: dict})
    def get(self, request, **kwargs):
        from ..defaults import default_groups

        target = self.target()
        services.check_cluster_visible(request.user, target.cluster)
        return Response({"groups": default_groups(user=request.user, cluster=target.cluster)})

    @extend_schema(request=s.DefaultGroupsSerializer, responses={200: dict})
    def put(self, request, **kwargs):
        from ..defaults import default_groups_set

        target = self.target()
        data = self.body(s.DefaultGroupsSerializer)
        return Response({"groups": default_groups_set(user=request.user, cluster=target.cluster,
                                                      groups=data["groups"])})
