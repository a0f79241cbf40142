"""Refused requests (403): one log line and one audit entry each, never a PermissionDenied traceback.

Django logs a refused view through `django.request` with the exception attached (a traceback per
refusal); DropForbidden removes those records and RefusedAccessMiddleware writes its own line,
naming who was refused what and why."""

from __future__ import annotations

import logging

from django.core.exceptions import PermissionDenied

logger = logging.getLogger("apps.core.access")


class DropForbidden(logging.Filter):
    """On `django.request`: drop 403 records (RefusedAccessMiddleware logs them in one line)."""

    def filter(self, record: logging.LogRecord) -> bool:
        return getattr(record, "status_code", None) != 403


class RefusedAccessMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        response = self.get_response(request)
        if response.status_code == 403:
            self.refused(request, response)
        return response

    def process_exception(self, request, exception):
        if isinstance(exception, PermissionDenied):
            request.refused_reason = str(exception)
        return None  # Django still answers 403 as usual

    def refused(self, request, response) -> None:
        from .models import AuditResult  # not at import: LOGGING loads DropForbidden before the apps
        from .services import audit_log

        user = getattr(request, "user", None)
        who = user.get_username() if user is not None and user.is_authenticated else "anonymous"
        reason = getattr(request, "refused_reason", "") or _drf_reason(response)
        logger.warning("refused %s %s for %s (403)%s", request.method, request.path, who,
                       f": {reason}" if reason else "")
        if getattr(request, "audit_recorded", False):
            return  # the view audited its own refusal
        try:
            audit_log(user=user, action="core.access_refused", target=request.path[:200],
                      result=AuditResult.DENIED, request=request,
                      detail={"method": request.method, "reason": reason[:500]} if reason else {"method": request.method})
        except Exception:  # an audit failure must not turn a 403 into a 500
            logger.exception("could not audit the refused request %s %s", request.method, request.path)


def _drf_reason(response) -> str:
    data = getattr(response, "data", None)
    if isinstance(data, dict):
        return str(data.get("detail", ""))
    return ""
