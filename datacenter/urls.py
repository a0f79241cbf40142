"""Site URLs: each app's UI urls at the root, its API urls under /api/v1/."""

from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.contrib.auth.decorators import login_not_required
from django.templatetags.static import static
from django.urls import include, path
from django.views.generic import RedirectView

# Apps with pages and an API, in navigation order; each prefixes its own paths.
APPS = ["nodes", "storage", "guests", "gpus", "operations", "permissions"]
APPS += ["leases", "approvals"]  # guests' expiry (apps/leases), requests waiting for an operator (apps/approvals)

APPS += ["firewall"]  # guest, node and datacenter firewall (apps/firewall)
APPS += ["consoles"]  # browser consoles: pages here, the relay in apps/consoles/routing.py

APPS += ["pveaccess"]  # Proxmox users, groups, roles, ACL and API tokens (apps/pveaccess)
APPS += ["ha"]  # high availability: quorum, HA guests and rules, failover timeline (apps/ha)

api_patterns = [path("", include("apps.core.api.urls"))] + [
    path("", include(f"apps.{app}.api.urls")) for app in APPS
]

urlpatterns = [
    path("login/", auth_views.LoginView.as_view(redirect_authenticated_user=True), name="login"),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    # Browsers and tools ask for /favicon.ico whatever the page links; send them to ours.
    path("favicon.ico", login_not_required(RedirectView.as_view(url=static("img/favicon.svg"), permanent=True))),
    path("admin/", admin.site.urls),
    path("api/v1/", include(api_patterns)),
    # Apps before core: nodes serves the datacenter dashboard at "/" (core:dashboard is the fallback).
    *[path("", include(f"apps.{app}.urls")) for app in APPS],
    path("", include("apps.core.urls")),
]
