# UI routes, mounted at the site root by datacenter/urls.py.
from django.urls import path

from . import views

app_name = "pveaccess"

_tabs = [path(f"access/<int:cluster>/{tab}/", (views.EffectiveView if tab == "effective" else
                                                type(f"{tab}_page", (views.AccessPageView,), {"tab": tab})).as_view(),
              name=tab) for tab, _ in views.TABS]

urlpatterns = [
    path("access/", views.AccessIndexView.as_view(), name="index"),
    *_tabs,
    path("access/<int:cluster>/users/add/", views.UserCreateView.as_view(), name="user_add"),
    path("access/<int:cluster>/users/edit/", views.UserEditView.as_view(), name="user_edit"),
    path("access/<int:cluster>/users/<str:userid>/delete/", views.UserDeleteView.as_view(), name="user_delete"),
    path("access/<int:cluster>/tokens/add/", views.TokenCreateView.as_view(), name="token_add"),
    path("access/<int:cluster>/tokens/<str:userid>/<str:name>/delete/", views.TokenDeleteView.as_view(),
         name="token_delete"),
    path("access/<int:cluster>/groups/add/", views.GroupCreateView.as_view(), name="group_add"),
    path("access/<int:cluster>/groups/<str:groupid>/delete/", views.GroupDeleteView.as_view(), name="group_delete"),
    path("access/<int:cluster>/roles/add/", views.RoleCreateView.as_view(), name="role_add"),
    path("access/<int:cluster>/roles/<str:roleid>/delete/", views.RoleDeleteView.as_view(), name="role_delete"),
    path("access/<int:cluster>/acl/add/", views.AclAddView.as_view(), name="acl_add"),
    path("access/<int:cluster>/acl/delete/", views.AclRemoveView.as_view(), name="acl_delete"),
]
