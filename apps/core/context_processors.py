"""Template context for base.html: the navigation."""

from django.urls import NoReverseMatch, reverse
from django.utils.functional import SimpleLazyObject

from .scoping import can, is_operator

# (label, url name, policy action the user must hold to see it). Links whose app has no such url
# yet are left out. Tenants see their guests, storage, operations, audit, tenant and tokens.
NAVIGATION = [
    ("Dashboard", "core:dashboard", None),
    ("Clusters", "nodes:cluster_list", "infrastructure.view"),
    ("Nodes", "nodes:node_list", "infrastructure.view"),
    ("Storage", "storage:storage_list", "storage.view"),
    ("GPUs", "gpus:gpudevice_list", "infrastructure.view"),
    ("High availability", "ha:index", "ha.view"),
    ("Guests", "guests:guest_list", "guest.view"),
    ("Firewall", "firewall:index", "firewall.view"),
    ("Operations", "operations:operation_list", "operation.view"),
    ("Leases", "leases:lease_list", "guest.view"),
    ("Approvals", "approvals:approval_list", "tenant.view"),
    ("Audit log", "core:auditentry_list", "audit.view"),
    ("Tenants", "permissions:tenant_list", "tenant.view"),
    ("API tokens", "permissions:token_list", "tenant.view"),
    ("Proxmox access", "pveaccess:index", "pveaccess.view"),
]


_KEYS = ("navigation", "is_operator", "can_use_admin", "active_tenant", "tenant_choices")


def navigation(request):
    """Computed once per request (a template rendered with the request runs the context processors
    again), and only when a template reads it: an htmx fragment (a table page, a live reload) shows no
    navigation and now spends none of its queries (permissions for the admin link, the tenant
    switcher's memberships)."""
    cached = getattr(request, "_navigation_context", None)
    if cached is None:
        whole = SimpleLazyObject(lambda: _navigation(request))
        cached = {key: SimpleLazyObject(lambda key=key: whole.get(key)) for key in _KEYS}
        try:
            request._navigation_context = cached
        except AttributeError:
            pass
    return cached


def _navigation(request):
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return {"navigation": []}
    actor = request.actor if hasattr(request, "actor") else user
    items = []
    for label, name, action in NAVIGATION:
        if action is not None and not can(actor, action):
            continue
        try:
            url = reverse(name)
        except NoReverseMatch:
            continue
        active = request.path == url if url == "/" else request.path.startswith(url)
        items.append({"label": label, "url": url, "active": active})
    return {"navigation": items, "is_operator": is_operator(user), "can_use_admin": can_use_admin(request),
            **tenant_switcher(request, actor)}


def tenant_switcher(request, actor) -> dict:
    """The active tenant, and the user's tenants when there are several to switch between."""
    from django.apps import apps

    tenant = getattr(actor, "tenant", None)
    if not apps.is_installed("apps.permissions") or getattr(request, "auth", None) is not None:
        return {"active_tenant": tenant, "tenant_choices": []}
    Membership = apps.get_model("permissions", "Membership")
    choices = [m.tenant for m in Membership.objects.filter(user=request.user).select_related("tenant")
               .order_by("tenant__name")]
    return {"active_tenant": tenant, "tenant_choices": choices if len(choices) > 1 else []}


def can_use_admin(request) -> bool:
    """Django admin is offered only to those it lets change something (not to every operator)."""
    from django.contrib import admin

    user = request.user
    if not (user.is_active and user.is_staff):
        return False
    return user.is_superuser or bool(admin.site.get_app_list(request))
