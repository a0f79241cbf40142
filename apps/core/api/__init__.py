"""API base classes every app's api/ builds on.

pagination.StandardPagination, errors.exception_handler (400 bodies are field maps),
viewsets.ScopedModelViewSet / ScopedReadOnlyModelViewSet (queryset from a selector).
"""

from .errors import exception_handler
from .pagination import StandardPagination
from .viewsets import ScopedModelViewSet, ScopedReadOnlyModelViewSet

__all__ = ["ScopedModelViewSet", "ScopedReadOnlyModelViewSet", "StandardPagination", "exception_handler"]
