import json

from django.contrib.auth import authenticate
from drf_spectacular.utils import OpenApiResponse, extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.decorators import action, api_view
from rest_framework.renderers import BaseRenderer, JSONRenderer
from rest_framework.response import Response
from rest_framework.reverse import reverse
from rest_framework.views import APIView

from ..filtersets import AuditEntryFilterSet
from ..lockout import lockout_response
from ..selectors import audit_entry_list
from .lean import ValuesListMixin
from .schema import ERROR_RESPONSES
from .serializers import AuditEntrySerializer
from .viewsets import ScopedReadOnlyModelViewSet


class CSVRenderer(BaseRenderer):
    """Lets a client ask for text/csv (the export streams its own body; errors come as JSON text)."""

    media_type = "text/csv"
    format = "csv"
    charset = "utf-8"

    def render(self, data, accepted_media_type=None, renderer_context=None):
        return json.dumps(data, default=str).encode()


class AuditEntryViewSet(ValuesListMixin, ScopedReadOnlyModelViewSet):
    selector = audit_entry_list
    serializer_class = AuditEntrySerializer
    filterset_class = AuditEntryFilterSet
    ordering_fields = ["created", "action", "result"]

    @extend_schema(
        responses={(200, "text/csv"): OpenApiResponse(description="CSV, streamed: when, user, token, tenant_id, "
                                                                  "action, object_type, object_id, object, result, "
                                                                  "address, detail.")},
        description="The entries the list would answer with the same filters, as CSV (not paginated).")
    @action(detail=False, methods=["get"], url_path="export", pagination_class=None,
            renderer_classes=[JSONRenderer, CSVRenderer])
    def export(self, request):
        from ..audit_export import csv_response

        return csv_response(self.filter_queryset(self.get_queryset()), request)


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


class BoundedAuthTokenSerializer(serializers.Serializer):
    username = serializers.CharField(label="Username", write_only=True, max_length=150)
    password = serializers.CharField(label="Password", style={"input_type": "password"}, trim_whitespace=False,
                                     write_only=True, max_length=4096)
    tenant = serializers.IntegerField(required=False, min_value=1, write_only=True,
                                      help_text="Id of the tenant the token acts in (default: your first one; "
                                                "operators: none).")
    read_only = serializers.BooleanField(required=False, default=False, write_only=True)

    def validate(self, attrs):
        # authenticate() with the request: django-axes counts the failures and may lock out.
        user = authenticate(request=self.context.get("request"), username=attrs["username"],
                            password=attrs["password"])
        if user is None:
            raise serializers.ValidationError("Unable to log in with provided credentials.", code="authorization")
        attrs["user"] = user
        return attrs


class TokenView(APIView):
    """Username + password -> a new API token (shown once; expires after 90 days; see /api/v1/tokens/).
    Failed logins count towards the lockout (django-axes)."""

    authentication_classes = []
    permission_classes = []
    serializer_class = BoundedAuthTokenSerializer

    @extend_schema(
        request=BoundedAuthTokenSerializer,
        responses={
            200: inline_serializer("AuthToken", {
                "token": serializers.CharField(help_text="The secret: send `Authorization: Token <it>`. "
                                                         "Shown only now."),
                "expiry": serializers.DateTimeField(),
                "tenant": serializers.IntegerField(allow_null=True),
                "read_only": serializers.BooleanField(),
            }),
            400: ERROR_RESPONSES[400],
            429: OpenApiResponse(ERROR_RESPONSES[429].response,
                                 description="Too many failed logins for this account or address, or too many "
                                             "requests: wait for Retry-After seconds."),
        },
        auth=[],
    )
    def post(self, request, *args, **kwargs):
        from django.core.exceptions import ValidationError as DjangoValidationError

        from apps.permissions.models import Tenant
        from apps.permissions.tokens import issue_token

        serializer = self.serializer_class(data=request.data, context={"request": request._request})
        if not serializer.is_valid():
            if getattr(request._request, "axes_locked_out", False) or getattr(request, "axes_locked_out", False):
                return lockout_response(request._request)
            serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        tenant = None
        if data.get("tenant") is not None:
            tenant = Tenant.objects.filter(pk=data["tenant"]).first()
            if tenant is None:
                raise serializers.ValidationError({"tenant": ["you are not a member of this tenant"]})
        try:
            token, secret = issue_token(data["user"], name="login (POST /api/v1/auth/token/)", tenant=tenant,
                                        read_only=data["read_only"], request=request._request, action="token.login")
        except DjangoValidationError as exc:
            raise serializers.ValidationError(exc.message_dict) from exc
        return Response({"token": secret, "expiry": token.expiry, "tenant": token.tenant_id,
                         "read_only": token.read_only})


token_view = TokenView.as_view()
