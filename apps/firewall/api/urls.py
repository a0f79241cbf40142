# API routes, mounted at /api/v1/ by datacenter/urls.py: the same views for each level.
from django.urls import path

from . import ips as i
from . import views as v

app_name = "firewall-api"


def _rules(prefix: str, kind: str, name: str) -> list:
    return [
        path(f"{prefix}rules/", v.RuleListAPIView.as_view(kind=kind), name=f"{name}-rules"),
        path(f"{prefix}rules/<int:pos>/", v.RuleAPIView.as_view(kind=kind), name=f"{name}-rule"),
        path(f"{prefix}rules/<int:pos>/move/", v.RuleMoveAPIView.as_view(kind=kind), name=f"{name}-rule-move"),
        path(f"{prefix}rules/<int:pos>/enable/", v.RuleEnableAPIView.as_view(kind=kind), name=f"{name}-rule-enable"),
    ]


def _sets(prefix: str, kind: str, name: str) -> list:
    return [
        path(f"{prefix}ipsets/", v.IpSetListAPIView.as_view(kind=kind), name=f"{name}-ipsets"),
        path(f"{prefix}ipsets/<str:name>/", v.IpSetAPIView.as_view(kind=kind), name=f"{name}-ipset"),
        path(f"{prefix}ipsets/<str:name>/<path:cidr>/", v.IpSetEntryAPIView.as_view(kind=kind),
             name=f"{name}-ipset-entry"),
        path(f"{prefix}aliases/", v.AliasListAPIView.as_view(kind=kind), name=f"{name}-aliases"),
        path(f"{prefix}aliases/<str:name>/", v.AliasAPIView.as_view(kind=kind), name=f"{name}-alias"),
    ]


urlpatterns = [
    *_rules("guests/<int:pk>/firewall/", "guest", "guest-firewall"),
    *_sets("guests/<int:pk>/firewall/", "guest", "guest-firewall"),
    path("guests/<int:pk>/firewall/options/", v.OptionsAPIView.as_view(kind="guest"), name="guest-firewall-options"),
    path("guests/<int:pk>/firewall/effective/", v.EffectiveAPIView.as_view(kind="guest"),
         name="guest-firewall-effective"),
    path("guests/<int:pk>/firewall/log/", v.LogAPIView.as_view(kind="guest"), name="guest-firewall-log"),
    path("guests/<int:pk>/firewall/ips/", i.GuestIpsAPIView.as_view(kind="guest"), name="guest-firewall-ips"),
    path("guests/<int:pk>/firewall/ips/alerts/", i.GuestIpsAlertsAPIView.as_view(kind="guest"),
         name="guest-firewall-ips-alerts"),
    path("firewall/ips/alerts/", i.IpsAlertsAPIView.as_view(), name="firewall-ips-alerts"),
    path("clusters/<int:pk>/firewall/ssh/", i.ChannelAPIView.as_view(), name="cluster-firewall-ssh"),
    path("clusters/<int:pk>/firewall/ssh/key/", i.ChannelKeyAPIView.as_view(), name="cluster-firewall-ssh-key"),
    path("clusters/<int:pk>/firewall/ssh/test/", i.ChannelTestAPIView.as_view(), name="cluster-firewall-ssh-test"),
    path("clusters/<int:pk>/firewall/ssh/read/", i.ChannelReadAPIView.as_view(), name="cluster-firewall-ssh-read"),
    path("clusters/<int:pk>/firewall/ssh/nodes/<str:node>/", i.ChannelHostAPIView.as_view(),
         name="cluster-firewall-ssh-node"),
    *_rules("nodes/<int:pk>/firewall/", "node", "node-firewall"),
    path("nodes/<int:pk>/firewall/options/", v.OptionsAPIView.as_view(kind="node"), name="node-firewall-options"),
    path("nodes/<int:pk>/firewall/log/", v.LogAPIView.as_view(kind="node"), name="node-firewall-log"),
    *_rules("clusters/<int:pk>/firewall/", "cluster", "cluster-firewall"),
    *_sets("clusters/<int:pk>/firewall/", "cluster", "cluster-firewall"),
    path("clusters/<int:pk>/firewall/options/", v.OptionsAPIView.as_view(kind="cluster"),
         name="cluster-firewall-options"),
    path("clusters/<int:pk>/firewall/groups/", v.GroupListAPIView.as_view(), name="cluster-firewall-groups"),
    path("clusters/<int:pk>/firewall/defaults/", v.DefaultGroupsAPIView.as_view(), name="cluster-firewall-defaults"),
    path("clusters/<int:pk>/firewall/groups/<str:group>/", v.GroupAPIView.as_view(), name="cluster-firewall-group"),
    *_rules("clusters/<int:pk>/firewall/groups/<str:group>/", "group", "cluster-firewall-group"),
]
