# API routes, mounted at /api/v1/ by datacenter/urls.py.
from django.urls import path
from rest_framework.routers import SimpleRouter

from .quota_requests import QuotaRequestViewSet
from .views import ApiTokenViewSet, TenantMemberViewSet, TenantViewSet

app_name = "permissions-api"

router = SimpleRouter()
router.register("tokens", ApiTokenViewSet, basename="apitoken")
router.register("tenants", TenantViewSet, basename="tenant")
router.register("quota-requests", QuotaRequestViewSet, basename="quotarequest")

members = TenantMemberViewSet.as_view({"get": "list", "post": "create"})
member = TenantMemberViewSet.as_view({"get": "retrieve", "patch": "partial_update", "delete": "destroy"})

urlpatterns = [
    *router.urls,
    path("tenants/<int:tenant_id>/members/", members, name="tenant-members"),
    path("tenants/<int:tenant_id>/members/<int:user_id>/", member, name="tenant-member"),
]
