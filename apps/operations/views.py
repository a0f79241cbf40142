from django.contrib.auth.mixins import LoginRequiredMixin
from django.core.exceptions import PermissionDenied
from django.http import Http404
from django.shortcuts import render
from django.utils.cache import patch_vary_headers
from django.views import View

from apps.core.models import AuditResult
from apps.core.services import audit_log
from apps.core.views import ObjectDetailView, ObjectListView
from apps.proxmox import ProxmoxError

from .filtersets import OperationFilterSet
from .live import progress_context
from .selectors import operation_get, operation_list
from .services import OperationNotCancellable, operation_cancel
from .tables import OperationTable


class OperationListView(ObjectListView):
    selector = operation_list
    table_class = OperationTable
    filterset_class = OperationFilterSet
    title = "Operations"


class OperationDetailView(ObjectDetailView):
    selector = operation_list
    partial_template_name = "operations/partials/operation_progress.html"

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        context.update(progress_context(self.object))
        return context


class OperationCancelView(LoginRequiredMixin, View):
    """POST: cancel, then answer the progress partial (the UI swaps it in place)."""

    def post(self, request, pk):
        operation = operation_get(user=request.user, pk=pk)
        if operation is None:
            raise Http404("No such operation.")
        error = ""
        try:
            operation_cancel(operation=operation, user=request.user)
            audit_log(user=request.user, action="operation.cancel", target=operation,
                      result=AuditResult.SUCCESS, request=request)
        except PermissionDenied:
            audit_log(user=request.user, action="operation.cancel", target=operation,
                      result=AuditResult.DENIED, request=request)
            raise
        except OperationNotCancellable as exc:
            error = str(exc)
        except ProxmoxError as exc:
            error = f"Proxmox refused to stop the task: {exc}"
            audit_log(user=request.user, action="operation.cancel", target=operation,
                      result=AuditResult.FAILURE, request=request, detail={"error": str(exc)})
        operation.refresh_from_db()
        # 200 even when refused: htmx swaps only 2xx, and the panel shows the reason.
        response = render(request, "operations/partials/operation_progress.html",
                          {**progress_context(operation), "cancel_error": error})
        patch_vary_headers(response, ("HX-Request",))
        return response


def operation_progress_response(request, operation, status: int = 200):
    """What an action view of any app answers after starting an operation: the live progress
    panel (htmx swaps it in; the websocket takes over from there)."""
    response = render(request, "operations/partials/operation_progress.html", progress_context(operation),
                      status=status)
    patch_vary_headers(response, ("HX-Request",))
    return response
