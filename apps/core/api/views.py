from drf_spectacular.utils import extend_schema
from rest_framework.decorators import api_view
from rest_framework.response import Response
from rest_framework.reverse import reverse

from ..filtersets import AuditEntryFilterSet
from ..selectors import audit_entry_list
from .viewsets import ScopedReadOnlyModelViewSet
from .serializers import AuditEntrySerializer


class AuditEntryViewSet(ScopedReadOnlyModelViewSet):
    selector = audit_entry_list
    serializer_class = AuditEntrySerializer
    filterset_class = AuditEntryFilterSet
    ordering_fields = ["created", "action", "result"]


@extend_schema(exclude=True)
@api_view(["GET"])
def api_root(request, format=None):
    """Entry point: where the schema, the docs and the token endpoint are."""
    return Response(
        {
            "schema": reverse("core-api:schema", request=request, format=format),
            "docs": reverse("core-api:docs", request=request, format=format),
            "token": reverse("core-api:token", request=request, format=format),
            "audit": reverse("core-api:auditentry-list", request=request, format=format),
        }
    )
