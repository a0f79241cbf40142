"""Viewsets whose queryset comes from a selector (scoped to the caller)."""

from rest_framework import viewsets

from .actions import ActionAPIMixin


class _ScopedMixin:
    """`selector` is a function `(*, user) -> QuerySet` already scoped to what the user may see,
    so objects outside the caller's scope are 404 and lists never leak."""

    selector = None

    def get_queryset(self):
        selector = type(self).selector
        if selector is None:
            raise NotImplementedError(f"{type(self).__name__} must set `selector`")
        return selector(user=self.request.user)


class ScopedModelViewSet(_ScopedMixin, ActionAPIMixin, viewsets.ModelViewSet):
    """CRUD viewset over a selector; subclasses set selector, serializer_class, filterset_class."""


class ScopedReadOnlyModelViewSet(_ScopedMixin, ActionAPIMixin, viewsets.ReadOnlyModelViewSet):
    """List + retrieve over a selector."""
