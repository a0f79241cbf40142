"""Template context for base.html: the navigation."""

from django.urls import NoReverseMatch, reverse

from .scoping import is_operator

# (label, url name, operators only). Links whose app has no such url yet are left out.
NAVIGATION = [
    ("Dashboard", "core:dashboard", False),
    ("Clusters", "nodes:cluster_list", False),
    ("Nodes", "nodes:node_list", False),
    ("Storage", "storage:storage_list", False),
    ("GPUs", "gpus:gpudevice_list", False),
    ("Guests", "guests:guest_list", False),
    ("Operations", "operations:operation_list", False),
    ("Audit log", "core:auditentry_list", False),
]


def navigation(request):
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return {"navigation": []}
    items = []
    for label, name, operators_only in NAVIGATION:
        if operators_only and not is_operator(user):
            continue
        try:
            url = reverse(name)
        except NoReverseMatch:
            continue
        active = request.path == url if url == "/" else request.path.startswith(url)
        items.append({"label": label, "url": url, "active": active})
    return {"navigation": items, "is_operator": is_operator(user)}
