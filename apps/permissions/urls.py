# UI routes, mounted at the site root by datacenter/urls.py.
from django.urls import path

from . import views

app_name = "permissions"

urlpatterns = [
    path("tokens/", views.TokenListView.as_view(), name="token_list"),
    path("tokens/<str:key>/revoke/", views.TokenRevokeView.as_view(), name="token_revoke"),
    path("tenants/", views.TenantListView.as_view(), name="tenant_list"),
    path("tenants/switch/", views.TenantSwitchView.as_view(), name="tenant_switch"),
    path("tenants/<int:pk>/", views.TenantDetailView.as_view(), name="tenant"),
    path("tenants/<int:pk>/members/", views.MemberAddView.as_view(), name="member_add"),
    path("tenants/<int:pk>/pools/", views.TenantPoolAssignView.as_view(), name="tenantpool_add"),
    path("tenants/<int:pk>/members/<int:user_id>/role/", views.MemberRoleView.as_view(), name="member_role"),
    path("tenants/<int:pk>/members/<int:user_id>/remove/", views.MemberRemoveView.as_view(), name="member_remove"),
    path("tenants/<int:pk>/quota-requests/new/", views.QuotaRequestCreateView.as_view(), name="quotarequest_add"),
    path("quota-requests/", views.QuotaRequestListView.as_view(), name="quotarequest_list"),
    path("quota-requests/<int:pk>/decide/", views.QuotaRequestDecideView.as_view(), name="quotarequest_decide"),
]
