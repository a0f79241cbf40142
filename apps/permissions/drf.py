"""DRF permission classes that ask the policy (views only translate its answer)."""

from __future__ import annotations

from rest_framework import permissions

from . import policy


class ReadOnlyActorPermission(permissions.BasePermission):
    """Default for every API view: auditors and read-only tokens may only read (403 otherwise)."""

    message = "read-only: this token (or auditor) may not change anything"

    def has_permission(self, request, view):
        if request.method in permissions.SAFE_METHODS:
            return True
        return not policy.actor_for_request(request).read_only


class ActionPermission(permissions.BasePermission):
    """Writes need `action` (policy.ACTIONS). On an object route the object is looked up first,
    so an object the caller may not see answers 404, one they see but may not change 403."""

    action = ""

    @classmethod
    def for_action(cls, action: str):
        policy.is_read(action)  # ValueError for an unknown action, at import
        return type(f"ActionPermission[{action}]", (cls,), {"action": action})

    def has_permission(self, request, view):
        if request.method in permissions.SAFE_METHODS:
            return True
        if view.kwargs.get(getattr(view, "lookup_url_kwarg", None) or getattr(view, "lookup_field", "pk")):
            return True  # decided in has_object_permission, after the scoped lookup (404 first)
        return policy.can(request, self.action)

    def has_object_permission(self, request, view, obj):
        if request.method in permissions.SAFE_METHODS:
            return True
        policy.check(request, self.action, obj, request=request)  # raises Denied (403), audited
        return True
