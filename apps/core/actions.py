"""The generic action view every "do this to that object" form or button posts to.

GET answers the action's form or dialog (when it has one). POST validates the form, calls the
service, audits the attempt (accepted, denied or refused) and answers the operation's progress
partial, or redirects a full-page post to the operation's page. A subclass names its pieces:

    class GuestTemplateView(GuestActionView):
        audit_action = "guests.guest_template"
        success_template_name = "guests/config/operation.html"

        def perform(self, form):
            return guest_template(guest=self.object, user=self.request.user)

Answers vary on HX-Request; an htmx request always gets a 2xx (htmx swaps nothing else).
"""

from __future__ import annotations

from django.contrib.auth.mixins import LoginRequiredMixin
from django.core.exceptions import ImproperlyConfigured, PermissionDenied, ValidationError
from django.shortcuts import redirect, render
from django.utils.cache import patch_vary_headers
from django.views import View

from apps.operations.live import progress_context
from apps.operations.models import Operation

from .models import AuditResult
from .services import audit_log
from .views import is_partial


def field_errors(exc: ValidationError) -> dict[str, list[str]]:
    """Any ValidationError as a field map (reasons without a field under `__all__`)."""
    return exc.message_dict if hasattr(exc, "error_dict") else {"__all__": exc.messages}


def error_text(exc: ValidationError, *, keys: bool = True) -> str:
    """A field map in one line: `field: reason; ...` (`__all__` reasons without a name)."""
    return "; ".join(f"{key}: {message}" if keys and key != "__all__" else message
                     for key, messages in field_errors(exc).items() for message in messages)


class ActionView(LoginRequiredMixin, View):
    """GET: the form; POST: form -> `perform()` -> audit -> progress partial (see the module doc)."""

    form_class = None
    template_name: str | None = None  # the form / dialog: GET, and a POST answered with its errors
    page_template_name: str | None = None  # the same for a full-page (not htmx) request, when it differs
    form_context_name = "form"
    context_object_name = "object"
    error_template_name = "htmx/action_error.html"  # no form template: the reason alone, as {{ error }}
    error_context_name: str | None = None  # reasons go here (default: the form's non-field errors)
    error_keys = True  # reasons in one line name their field
    service_errors_as_text = False  # the service's field errors as one line, not on the form's fields
    service_error_fields: dict[str, str] = {}  # service error key -> form field
    success_template_name = "operations/partials/operation_progress.html"
    progress_oob = False  # success answers the form again with the progress panel out of band
    redirect_full_page = False  # a full-page post that worked goes to the operation's page
    audit_action = ""  # empty: the service audits itself
    audit_fields: tuple[str, ...] = ()  # audited with the operation: form values, else URL kwargs
    refusals: tuple[type[Exception], ...] = ()  # answered with their `message`, audited as a failure
    invalid_status = 200  # full-page answers only: htmx gets 200 so that it swaps
    denied_status = 200  # the same, for PermissionDenied

    object = None

    # --- what a subclass names -------------------------------------------------------------------

    def get_object(self):
        """The scoped object acted on (raise Http404 outside the user's scope); None for none."""
        return None

    def get_form_kwargs(self) -> dict:
        return {}

    def perform(self, form):
        """Call the service; return its Operation (or what get_success_url/the template expect)."""
        raise NotImplementedError(f"{type(self).__name__} must define perform()")

    def get_context_data(self, **kwargs) -> dict:
        return {self.context_object_name: self.object, **kwargs}

    def get_audit_action(self, form) -> str:
        return self.audit_action

    def get_audit_target(self, result=None):
        return self.object

    def get_audit_detail(self, form, result) -> dict:
        data = form.cleaned_data if form is not None else {}
        return {name: data[name] if name in data else self.kwargs.get(name) for name in self.audit_fields}

    def get_success_context(self, form, result) -> dict:
        extra = {"operation_oob": True} if self.progress_oob else {}
        if self.progress_oob and form is not None:
            extra[self.form_context_name] = form
        if isinstance(result, Operation):
            extra.update(progress_context(result))
        return self.get_context_data(**extra)

    def get_success_url(self, result) -> str:
        return result.get_absolute_url()

    # --- the flow ----------------------------------------------------------------------------------

    def get_form(self, data=None, files=None):
        if self.form_class is None:
            return None
        if data is None:
            return self.form_class(**self.get_form_kwargs())
        return self.form_class(data, files, **self.get_form_kwargs())

    def render(self, template: str | None, context: dict, status: int = 200):
        if template is None:
            raise ImproperlyConfigured(f"{type(self).__name__} has no template for this answer")
        response = render(self.request, template, context, status=200 if is_partial(self.request) else status)
        patch_vary_headers(response, ("HX-Request",))
        return response

    def get_template_name(self) -> str | None:
        return self.page_template_name if self.page_template_name and not is_partial(self.request) \
            else self.template_name

    def get(self, request, *args, **kwargs):
        if self.template_name is None:
            return self.http_method_not_allowed(request, *args, **kwargs)
        self.object = self.get_object()
        return self.render(self.get_template_name(),
                           self.get_context_data(**{self.form_context_name: self.get_form()}))

    def post(self, request, *args, **kwargs):
        self.object = self.get_object()
        form = self.get_form(request.POST, request.FILES)
        if form is not None and not form.is_valid():
            return self.form_invalid(form)
        try:
            result = self.perform(form)
        except ValidationError as exc:
            return self.service_invalid(form, exc)
        except PermissionDenied as exc:
            if not getattr(exc, "audited", False):  # the policy's Denied has written its own entry
                self.audit(form, AuditResult.DENIED)
            return self.form_invalid(form, str(exc), status=self.denied_status)
        except self.refusals as exc:
            message = getattr(exc, "message", str(exc))
            self.audit(form, AuditResult.FAILURE, error=message)
            return self.refused(form, exc, message)
        self.audit(form, AuditResult.ACCEPTED, result)
        return self.form_valid(form, result)

    def form_valid(self, form, result):
        if self.redirect_full_page and not is_partial(self.request):
            return redirect(self.get_success_url(result))
        return self.render(self.success_template_name, self.get_success_context(form, result))

    def service_invalid(self, form, exc: ValidationError):
        """The service's field errors: on the form's fields (or one line when asked or formless)."""
        if form is None or self.template_name is None or self.service_errors_as_text:
            return self.form_invalid(form, error_text(exc, keys=self.error_keys))
        for key, messages in field_errors(exc).items():
            name = self.service_error_fields.get(key, key)
            for message in messages:
                form.add_error(name if name in form.fields else None, message)
        return self.form_invalid(form)

    def refused(self, form, exc: Exception, message: str):
        return self.form_invalid(form, message)

    def form_invalid(self, form, error: str = "", status: int | None = None, **extra):
        """The form (or dialog) again with its errors; without a form template, the reason alone."""
        status = self.invalid_status if status is None else status
        if form is None or self.template_name is None:
            if not error and form is not None:
                error = "; ".join(f"{key}: {message}" for key, messages in form.errors.items() for message in messages)
            return self.render(self.error_template_name, {"error": error}, status)
        if error and self.error_context_name:
            extra[self.error_context_name] = error
        elif error:
            form.add_error(None, error)
        return self.render(self.get_template_name(),
                           self.get_context_data(**{self.form_context_name: form}, **extra), status)

    def audit(self, form, result: str, outcome=None, **detail) -> None:
        if not self.get_audit_action(form):
            return
        if isinstance(outcome, Operation):
            detail["operation"] = str(outcome.pk)
        if result == AuditResult.ACCEPTED:
            detail.update(self.get_audit_detail(form, outcome))
        audit_log(user=self.request.user, action=self.get_audit_action(form), target=self.get_audit_target(outcome),
                  result=result, request=self.request, detail=detail or None)
