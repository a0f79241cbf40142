"""Who may see what, as core's callers ask it. The answer comes from apps.permissions.policy,
which registers itself here in PermissionsConfig.ready (core sits below permissions and must
not import it). Without the policy (never in a running project) only operators see anything.
"""

from __future__ import annotations

from typing import Any, Callable

from django.db.models import QuerySet

# Set by apps.permissions: {"visible": fn(user_or_actor, qs), "is_operator": fn(user_or_actor)}.
_policy: dict[str, Callable[..., Any]] = {}


def register_policy(*, visible: Callable[[Any, QuerySet], QuerySet], is_operator: Callable[[Any], bool],
                    serving: Callable[[Any], Any] | None = None, done_serving: Callable[[Any], None] | None = None,
                    can: Callable[..., bool] | None = None) -> None:
    _policy["visible"] = visible
    _policy["is_operator"] = is_operator
    if can is not None:
        _policy["can"] = can
    if serving is not None and done_serving is not None:
        _policy["serving"], _policy["done_serving"] = serving, done_serving


def can(user, action: str, obj=None) -> bool:
    """The policy's answer to "may `user` do `action` (on `obj`)" (operators only without it)."""
    if "can" in _policy:
        return _policy["can"](user, action, obj)
    return _user_is_operator(user)


def serving(source):
    """Answer the policy's questions for `source` (an object with user, auth, session: e.g. a
    websocket's scope) until done_serving(token): its active tenant and token count."""
    return _policy["serving"](source) if "serving" in _policy else None


def done_serving(token) -> None:
    if token is not None and "done_serving" in _policy:
        _policy["done_serving"](token)


def _user_is_operator(user) -> bool:
    return bool(user is not None and getattr(user, "is_authenticated", False) and user.is_active and user.is_staff)


def is_operator(user) -> bool:
    """Platform admin: an active staff user (`user` may also be a policy Actor)."""
    if "is_operator" in _policy:
        return _policy["is_operator"](user)
    return _user_is_operator(user)


def scope_queryset(queryset: QuerySet, user) -> QuerySet:
    """`queryset` narrowed to what `user` (a User or a policy Actor) may see."""
    if "visible" in _policy:
        return _policy["visible"](user, queryset)
    return queryset if _user_is_operator(user) else queryset.none()
