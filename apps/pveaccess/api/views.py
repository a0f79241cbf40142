"""REST: a cluster's Proxmox access control under /api/v1/pve-access/clusters/<cluster>/ (operators
change it, auditors read it, everyone else gets 404). Read live from Proxmox; writes answer 201/204
once Proxmox has made the change, 400 with a field map for bad input (nothing sent) or Proxmox's
refusal, 503 when the cluster cannot be reached."""

from __future__ import annotations

from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import status
from rest_framework.exceptions import APIException
from rest_framework.response import Response
from rest_framework.views import APIView

from apps.core.api.pagination import StandardPagination
from apps.core.api.schema import ERROR_RESPONSES, ErrorSerializer

from .. import services
from ..selectors import access_cluster
from . import serializers as s

# Path parameters as Proxmox spells them (the cluster any integer: a negative one is a JSON 404 too).
C = OpenApiParameter("cluster", int, OpenApiParameter.PATH)
USERID = OpenApiParameter("userid", str, OpenApiParameter.PATH, pattern=r"^[^\s:/%]+@[A-Za-z][A-Za-z0-9.\-_]+$",
                          description="name@realm")
GROUPID = OpenApiParameter("groupid", str, OpenApiParameter.PATH, pattern=r"^[A-Za-z0-9.\-_]+$")
ROLEID = OpenApiParameter("roleid", str, OpenApiParameter.PATH, pattern=r"^[A-Za-z0-9.\-_]+$")
TOKEN_NAME = OpenApiParameter("name", str, OpenApiParameter.PATH, pattern=r"^[A-Za-z][A-Za-z0-9.\-_]+$",
                              description="The token's name, after '!'.")
UNAVAILABLE = {503: OpenApiResponse(ErrorSerializer, description="The cluster cannot be reached; nothing changed.")}


class ClusterUnavailable(APIException):
    status_code = status.HTTP_503_SERVICE_UNAVAILABLE
    default_code = "cluster_unavailable"


class _AccessAPIView(APIView):
    """Resolves the cluster first (404 for anyone who may not see its access control)."""

    pagination_class = StandardPagination

    def initial(self, request, *args, **kwargs):
        super().initial(request, *args, **kwargs)
        self.cluster = access_cluster(user=request, pk=kwargs["cluster"])

    def handle_exception(self, exc):
        if isinstance(exc, services.Unavailable):
            exc = ClusterUnavailable(str(exc))
        return super().handle_exception(exc)

    def config(self, with_pools: bool = False):
        if with_pools or not hasattr(self, "_cfg"):  # one reading per request (writes re-read afterwards)
            self._cfg = services.access_config(cluster=self.cluster, with_pools=with_pools)
        return self._cfg

    def fresh(self):
        """After a write: what Proxmox holds now."""
        del self._cfg
        return self.config()

    def user_or_404(self, userid):
        user = self.config().user(userid)
        if user is None:
            raise services.policy.NotVisible("no such user")
        return user

    def page(self, items, serializer_class):
        paginator = self.pagination_class()
        chunk = paginator.paginate_queryset(list(items), self.request, view=self)
        return paginator.get_paginated_response(serializer_class(chunk, many=True).data)

    def valid(self, serializer_class, data):
        serializer = serializer_class(data=data)
        serializer.is_valid(raise_exception=True)
        return serializer.validated_data


def _token(token, value=None) -> dict:
    out = {"authid": token.authid, "userid": token.userid, "name": token.name, "privsep": token.privsep,
           "expire": token.expire, "comment": token.comment}
    return out if value is None else {**out, "value": value}


class RealmListView(_AccessAPIView):
    @extend_schema(parameters=[C], responses={200: s.RealmSerializer(many=True), **UNAVAILABLE})
    def get(self, request, cluster):
        """Authentication realms (read only)."""
        return self.page(services.realm_list(cluster=self.cluster), s.RealmSerializer)


class UserListView(_AccessAPIView):
    @extend_schema(parameters=[C], responses={200: s.UserSerializer(many=True), **UNAVAILABLE})
    def get(self, request, cluster):
        """Proxmox users with their groups and API tokens."""
        return self.page(self.config().users, s.UserSerializer)

    @extend_schema(parameters=[C], request=s.UserCreateSerializer, responses={201: s.UserSerializer, **UNAVAILABLE})
    def post(self, request, cluster):
        """Create a user (userid name@realm; groups and realm must exist)."""
        d = self.valid(s.UserCreateSerializer, request.data)
        services.user_create(actor=request, cluster=self.cluster, userid=d["userid"], password=d.get("password", ""),
                             groups=tuple(d["groups"]), comment=d["comment"], email=d["email"],
                             firstname=d["firstname"], lastname=d["lastname"], enable=d["enable"],
                             expire=d["expire"], cfg=self.config(), request=request._request)
        return Response(s.UserSerializer(self.fresh().user(d["userid"])).data, status=status.HTTP_201_CREATED)


class UserDetailView(_AccessAPIView):
    @extend_schema(parameters=[C, USERID], responses={200: s.UserSerializer, **UNAVAILABLE})
    def get(self, request, cluster, userid):
        return Response(s.UserSerializer(self.user_or_404(userid)).data)

    @extend_schema(parameters=[C, USERID], request=s.UserUpdateSerializer,
                   responses={200: s.UserSerializer, **UNAVAILABLE})
    def patch(self, request, cluster, userid):
        """Change a user's groups (replaced), enabled flag, comment or e-mail."""
        self.user_or_404(userid)
        d = self.valid(s.UserUpdateSerializer, request.data)
        services.user_update(actor=request, cluster=self.cluster, userid=userid,
                             groups=tuple(d["groups"]) if "groups" in d else None, enable=d.get("enable"),
                             comment=d.get("comment"), email=d.get("email"), cfg=self.config(),
                             request=request._request)
        return Response(s.UserSerializer(self.fresh().user(userid)).data)

    @extend_schema(parameters=[C, USERID], responses={204: None, **UNAVAILABLE})
    def delete(self, request, cluster, userid):
        """Delete a user with its tokens and ACL entries (not root@pam, not the portal's own)."""
        self.user_or_404(userid)
        services.user_delete(actor=request, cluster=self.cluster, userid=userid, cfg=self.config(), request=request._request)
        return Response(status=status.HTTP_204_NO_CONTENT)


class TokenListView(_AccessAPIView):
    @extend_schema(parameters=[C], responses={200: s.ProxmoxTokenSerializer(many=True), **UNAVAILABLE})
    def get(self, request, cluster):
        """Every Proxmox API token of every user (secrets are never readable)."""
        return self.page([_token(t) for u in self.config().users for t in u.tokens], s.ProxmoxTokenSerializer)


class UserTokenListView(_AccessAPIView):
    @extend_schema(parameters=[C, USERID], responses={200: s.ProxmoxTokenSerializer(many=True), **UNAVAILABLE})
    def get(self, request, cluster, userid):
        user = self.user_or_404(userid)
        return self.page([_token(t) for t in user.tokens], s.ProxmoxTokenSerializer)

    @extend_schema(parameters=[C, USERID], request=s.TokenCreateSerializer, responses={201: s.ProxmoxTokenCreatedSerializer, **UNAVAILABLE})
    def post(self, request, cluster, userid):
        """Create a Proxmox API token of this user: `value` is its secret, in this answer only."""
        self.user_or_404(userid)
        d = self.valid(s.TokenCreateSerializer, request.data)
        created = services.token_create(actor=request, cluster=self.cluster, userid=userid, name=d["name"],
                                        privsep=d["privsep"], expire=d["expire"], comment=d["comment"],
                                        cfg=self.config(), request=request._request)
        return Response(s.ProxmoxTokenCreatedSerializer(_token(created.token, created.value)).data,
                        status=status.HTTP_201_CREATED)


class UserTokenDetailView(_AccessAPIView):
    @extend_schema(parameters=[C, USERID, TOKEN_NAME], responses={204: None, **UNAVAILABLE})
    def delete(self, request, cluster, userid, name):
        """Delete a Proxmox API token (not the one the portal uses)."""
        user = self.user_or_404(userid)
        if not any(t.name == name for t in user.tokens):
            raise services.policy.NotVisible("no such token")
        services.token_delete(actor=request, cluster=self.cluster, userid=userid, name=name, cfg=self.config(), request=request._request)
        return Response(status=status.HTTP_204_NO_CONTENT)


class GroupListView(_AccessAPIView):
    @extend_schema(parameters=[C], responses={200: s.GroupSerializer(many=True), **UNAVAILABLE})
    def get(self, request, cluster):
        return self.page(self.config().groups, s.GroupSerializer)

    @extend_schema(parameters=[C], request=s.GroupCreateSerializer, responses={201: s.GroupSerializer, **UNAVAILABLE})
    def post(self, request, cluster):
        d = self.valid(s.GroupCreateSerializer, request.data)
        services.group_create(actor=request, cluster=self.cluster, groupid=d["groupid"], comment=d["comment"],
                              cfg=self.config(), request=request._request)
        group = next(g for g in self.fresh().groups if g.groupid == d["groupid"])
        return Response(s.GroupSerializer(group).data, status=status.HTTP_201_CREATED)


class GroupDetailView(_AccessAPIView):
    @extend_schema(parameters=[C, GROUPID], responses={204: None, **UNAVAILABLE})
    def delete(self, request, cluster, groupid):
        if not any(g.groupid == groupid for g in self.config().groups):
            raise services.policy.NotVisible("no such group")
        services.group_delete(actor=request, cluster=self.cluster, groupid=groupid, cfg=self.config(), request=request._request)
        return Response(status=status.HTTP_204_NO_CONTENT)


class RoleListView(_AccessAPIView):
    @extend_schema(parameters=[C], responses={200: s.RoleSerializer(many=True), **UNAVAILABLE})
    def get(self, request, cluster):
        """Roles with their privileges (built-in ones are `special`)."""
        return self.page(self.config().roles, s.RoleSerializer)

    @extend_schema(parameters=[C], request=s.RoleCreateSerializer, responses={201: s.RoleSerializer, **UNAVAILABLE})
    def post(self, request, cluster):
        """Create a custom role from privileges on Proxmox's list (see privileges/)."""
        d = self.valid(s.RoleCreateSerializer, request.data)
        services.role_create(actor=request, cluster=self.cluster, roleid=d["roleid"], privs=tuple(d["privs"]),
                             cfg=self.config(), request=request._request)
        role = next(r for r in self.fresh().roles if r.roleid == d["roleid"])
        return Response(s.RoleSerializer(role).data, status=status.HTTP_201_CREATED)


class RoleDetailView(_AccessAPIView):
    @extend_schema(parameters=[C, ROLEID], responses={204: None, **UNAVAILABLE})
    def delete(self, request, cluster, roleid):
        if not any(r.roleid == roleid for r in self.config().roles):
            raise services.policy.NotVisible("no such role")
        services.role_delete(actor=request, cluster=self.cluster, roleid=roleid, cfg=self.config(), request=request._request)
        return Response(status=status.HTTP_204_NO_CONTENT)


class PrivilegeListView(_AccessAPIView):
    pagination_class = None

    @extend_schema(parameters=[C], responses={200: {"type": "array", "items": {"type": "string"}}, **UNAVAILABLE})
    def get(self, request, cluster):
        """Proxmox's privileges (those of its Administrator role)."""
        return Response(self.config().privileges)


class PoolListView(_AccessAPIView):
    @extend_schema(parameters=[C], responses={200: s.PoolSerializer(many=True), **UNAVAILABLE})
    def get(self, request, cluster):
        """Pools with their guests and storages (ACL roles on a pool reach its members)."""
        return self.page(self.config(with_pools=True).pools, s.PoolSerializer)


class AclView(_AccessAPIView):
    @extend_schema(parameters=[C], responses={200: s.AclEntrySerializer(many=True), **UNAVAILABLE})
    def get(self, request, cluster):
        """ACL entries: a role on a path for a user, group or token."""
        return self.page(self.config().acl, s.AclEntrySerializer)

    @extend_schema(parameters=[C], request=s.AclAddSerializer, responses={201: s.AclEntrySerializer, **UNAVAILABLE})
    def post(self, request, cluster):
        """Give a role on a path (checked as Proxmox checks ACL paths) to a user, group or token."""
        d = self.valid(s.AclAddSerializer, request.data)
        path = services.acl_add(actor=request, cluster=self.cluster, path=d["path"], roleid=d["roleid"],
                                type=d["type"], ugid=d["ugid"], propagate=d["propagate"], cfg=self.config(), request=request._request)
        return Response(s.AclEntrySerializer({**d, "path": path}).data, status=status.HTTP_201_CREATED)

    @extend_schema(parameters=[C, s.AclChangeSerializer], responses={204: None, **UNAVAILABLE})
    def delete(self, request, cluster):
        """Remove one ACL entry, named by the query parameters path, type, ugid and roleid."""
        d = self.valid(s.AclChangeSerializer, request.query_params)
        services.acl_remove(actor=request, cluster=self.cluster, path=d["path"], roleid=d["roleid"], type=d["type"],
                            ugid=d["ugid"], cfg=self.config(), request=request._request)
        return Response(status=status.HTTP_204_NO_CONTENT)


class EffectiveView(_AccessAPIView):
    pagination_class = None

    @extend_schema(parameters=[C, s.EffectiveQuerySerializer,
                               OpenApiParameter("authid", str, required=True)],
                   responses={200: s.EffectiveSerializer, 400: ERROR_RESPONSES[400], **UNAVAILABLE})
    def get(self, request, cluster):
        """Effective privileges of a user or token on a path, computed as Proxmox computes them
        (with the ACL entries that decide), beside Proxmox's own answer."""
        d = self.valid(s.EffectiveQuerySerializer, request.query_params)
        answer = services.effective_privileges(cluster=self.cluster, authid=d["authid"], path=d["path"])
        return Response(s.EffectiveSerializer(answer).data)
