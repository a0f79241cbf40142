from django.urls import path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView
from rest_framework.routers import SimpleRouter

from .views import AuditEntryViewSet, api_root, token_view

app_name = "core-api"

router = SimpleRouter()
router.register("audit", AuditEntryViewSet, basename="auditentry")

urlpatterns = [
    path("", api_root, name="root"),
    path("schema/", SpectacularAPIView.as_view(), name="schema"),
    path("docs/", SpectacularSwaggerView.as_view(url_name="core-api:schema"), name="docs"),
    # username + password -> token, for tools that cannot hold a session
    path("auth/token/", token_view, name="token"),
    *router.urls,
]
