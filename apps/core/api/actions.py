"""The API side of actions: validate the body -> call the service -> audit -> 202 with the operation.

    class GuestViewSet(ScopedReadOnlyModelViewSet):
        @operation_action(serializer=MigrateRequestSerializer, audit="guests.guest_migrate")
        def migrate(self, guest, data):
            return guest_migrate(guest=guest, user=self.request.user, target=data["target"])

`operation_action` makes the function a viewset route (DRF's @action, POST on the detail by
default); `operation_handler` makes it an APIView's method (`post = operation_handler(...)(fn)`).
Either way the OpenAPI schema says 202 with the operation; the object comes from the scoped
queryset first (404 outside the caller's scope), then a bad body answers a 400 field map (the
core exception handler, also for a service's ValidationError), PermissionDenied 403 and the
view's `action_refusals` their own status with `detail` and `proxmox_message`; every attempt
that reached the service is audited.
"""

from __future__ import annotations

from collections.abc import Callable

from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from drf_spectacular.utils import extend_schema
from rest_framework import exceptions, status
from rest_framework.decorators import action
from rest_framework.response import Response


class ActionAPIMixin:
    """What `operation_action` / `operation_handler` run on; every scoped viewset has it."""

    action_refusals: tuple[type[Exception], ...] = ()  # a service's "Proxmox said no" with .message/.status

    def get_action_object(self):
        """The object acted on: the detail route's (scoped, else 404); APIViews override it."""
        return self.get_object() if getattr(self, "detail", False) else None

    def get_audit_target(self, obj, result):
        return obj if obj is not None else getattr(result, "target_repr", None)

    def run_action(self, request, *, perform: Callable, serializer=None, audit: str, audit_fields=(),
                   body: Callable | None = None, target: Callable | None = None) -> Response:
        from apps.core.models import AuditResult  # lazy: this module loads with DRF, before the apps

        obj = self.get_action_object() if target is None else None
        data = {}
        if serializer is not None:
            checked = serializer(data=body(request) if body else request.data, context={"request": request})
            checked.is_valid(raise_exception=True)
            data = checked.validated_data
        if target is not None:
            obj = target(self, data)
        try:
            result = perform(self, obj, data)
        except DjangoPermissionDenied as exc:
            if not getattr(exc, "audited", False):  # the policy's Denied has written its own entry
                self._audit(audit, obj, None, AuditResult.DENIED)
            raise exceptions.PermissionDenied(str(exc)) from exc
        except self.action_refusals as exc:
            message = getattr(exc, "message", str(exc))
            self._audit(audit, obj, None, AuditResult.FAILURE, error=message)
            return Response({"detail": message, "proxmox_message": getattr(exc, "proxmox_message", "")},
                            status=getattr(exc, "status", status.HTTP_409_CONFLICT))
        fields = audit_fields.items() if isinstance(audit_fields, dict) else ((f, f) for f in audit_fields)
        self._audit(audit, obj, result, AuditResult.ACCEPTED,
                    **{key: data[src] if src in data else self.kwargs.get(src) for key, src in fields})
        return self.accepted(result)

    def accepted(self, result) -> Response:
        from apps.operations.api.serializers import OperationSerializer
        from apps.operations.models import Operation

        if isinstance(result, Operation):
            result = OperationSerializer(result, context={"request": self.request}).data
        return Response(result, status=status.HTTP_202_ACCEPTED)

    def _audit(self, action_name: str, obj, result, outcome: str, **detail) -> None:
        from apps.core.services import audit_log

        if getattr(result, "pk", None) is not None:
            detail["operation"] = str(result.pk)
        audit_log(user=self.request.user, action=action_name, target=self.get_audit_target(obj, result),
                  result=outcome, request=self.request, detail=detail or None)


_UNSET = object()


def _handler(perform, *, serializer=None, audit: str, audit_fields=(), body=None, target=None, request=_UNSET,
             responses=None, **schema):
    from apps.operations.api.serializers import OperationSerializer

    def handler(self, http_request, *args, **kwargs):
        return self.run_action(http_request, perform=perform, serializer=serializer, audit=audit,
                               audit_fields=audit_fields, body=body, target=target)

    handler.__name__, handler.__qualname__, handler.__doc__ = perform.__name__, perform.__qualname__, perform.__doc__
    return handler, {"request": serializer if request is _UNSET else request,
                     "responses": responses or {202: OperationSerializer}, **schema}


def operation_handler(**options):
    """`fn(self, obj, data) -> Operation | dict` as an API method answering 202 (see the module doc).
    `request`/`responses`/other extend_schema arguments document it (default: the serializer, 202
    with the operation)."""

    def decorate(perform):
        handler, schema = _handler(perform, **options)
        return extend_schema(**schema)(handler)

    return decorate


def operation_action(*, detail: bool = True, methods=("post",), url_path=None, url_name=None, parser_classes=None,
                     **options):
    """`operation_handler` as a viewset route (DRF's @action; POST on the detail unless told)."""
    route = {"url_path": url_path, "url_name": url_name, "parser_classes": parser_classes}

    def decorate(perform):
        handler, schema = _handler(perform, **options)
        # extend_schema last: DRF's @action replaces the function's kwargs, where the schema is kept
        routed = action(detail=detail, methods=list(methods), **{k: v for k, v in route.items() if v is not None})
        return extend_schema(**schema)(routed(handler))

    return decorate
