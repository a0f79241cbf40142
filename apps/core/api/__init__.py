"""API base classes every app's api/ builds on.

pagination.StandardPagination, errors.exception_handler (400 bodies are field maps),
viewsets.ScopedModelViewSet / ScopedReadOnlyModelViewSet (queryset from a selector),
actions.operation_action / operation_handler (validate -> service -> audit -> 202 with the operation).
"""

from .actions import ActionAPIMixin, operation_action, operation_handler
from .errors import exception_handler
from .pagination import StandardPagination
from .viewsets import ScopedModelViewSet, ScopedReadOnlyModelViewSet

__all__ = ["ActionAPIMixin", "ScopedModelViewSet", "ScopedReadOnlyModelViewSet", "StandardPagination",
           "exception_handler", "operation_action", "operation_handler"]
