"""Site URLs: each app's UI urls at the root, its API urls under /api/v1/."""

from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path

# Apps with pages and an API, in navigation order; each prefixes its own paths.
APPS = ["nodes", "storage", "guests", "gpus", "operations"]

api_patterns = [path("", include("apps.core.api.urls"))] + [
    path("", include(f"apps.{app}.api.urls")) for app in APPS
]

urlpatterns = [
    path("login/", auth_views.LoginView.as_view(redirect_authenticated_user=True), name="login"),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("admin/", admin.site.urls),
    path("api/v1/", include(api_patterns)),
    # Apps before core: nodes serves the datacenter dashboard at "/" (core:dashboard is the fallback).
    *[path("", include(f"apps.{app}.urls")) for app in APPS],
    path("", include("apps.core.urls")),
]
