"""Login throttling (django-axes) for /login/, /admin/login/ and /api/v1/auth/token/, and its audit.

Axes counts failed logins per account and per address (settings AXES_*); past the limit both are
refused until the cool-off ends, a correct password included. Every login, logout, failed login
and lockout is written to the audit log (who, tenant, address, result); a token issued by
/api/v1/auth/token/ is audited as `token.login` by the permissions app.
"""

from __future__ import annotations

import math

from axes.backends import AxesStandaloneBackend
from axes.helpers import get_cool_off
from axes.signals import user_locked_out
from django.conf import settings
from django.contrib.auth.signals import (
    user_logged_in,
    user_logged_out,
    user_login_failed,
)
from django.dispatch import receiver
from django.http import JsonResponse
from django.shortcuts import render

from .models import AuditResult
from .services import audit_log


class LoginThrottleBackend(AxesStandaloneBackend):
    """Axes' check, skipped when there is no request: only code (tests, management commands)
    authenticates without one; every login form and the token endpoint pass theirs."""

    def authenticate(self, request, username=None, password=None, **kwargs):
        if request is None:
            return None
        return super().authenticate(request, username=username, password=password, **kwargs)


def cool_off_minutes(request=None) -> int:
    cool_off = get_cool_off(request)
    return max(1, math.ceil(cool_off.total_seconds() / 60)) if cool_off else 0


def lockout_message(request=None) -> str:
    return (f"Too many failed logins for this account or from this address: "
            f"try again in {cool_off_minutes(request)} minutes.")


def lockout_response(request, *args, **kwargs):
    """AXES_LOCKOUT_CALLABLE: JSON 429 for the API, a page saying what happened for people."""
    seconds = int(get_cool_off(request).total_seconds()) if get_cool_off(request) else 0
    if request.path.startswith("/api/"):
        response = JsonResponse({"detail": lockout_message(request)}, status=429)
    else:
        response = render(request, "registration/locked_out.html",
                          {"message": lockout_message(request), "minutes": cool_off_minutes(request)}, status=429)
    if seconds:
        response["Retry-After"] = str(seconds)
    return response


def _username(credentials) -> str:
    value = (credentials or {}).get(getattr(settings, "AXES_USERNAME_FORM_FIELD", "username")) or \
        (credentials or {}).get("username") or ""
    return str(value)[:150]


@receiver(user_logged_in, dispatch_uid="core.audit_login")
def audit_login(sender, request=None, user=None, **kwargs):
    # The tenant is the one the session starts in (the actor's, read from the request).
    audit_log(user=user, action="core.login", target=user, result=AuditResult.SUCCESS, request=request,
              detail={"path": getattr(request, "path", "")})


@receiver(user_logged_out, dispatch_uid="core.audit_logout")
def audit_logout(sender, request=None, user=None, **kwargs):
    if user is None:  # logging out without a session: nothing happened
        return
    audit_log(user=user, action="core.logout", target=user, result=AuditResult.SUCCESS, request=request)


@receiver(user_login_failed, dispatch_uid="core.audit_login_failed")
def audit_login_failed(sender, credentials=None, request=None, **kwargs):
    # No request: code calling authenticate(), not a login. Locked out: audit_lockout records it.
    if request is None or getattr(request, "axes_locked_out", False):
        return
    audit_log(user=None, action="core.login", target=f"login as {_username(credentials)!r}",
              result=AuditResult.FAILURE, request=request,
              detail={"login_as": _username(credentials), "path": request.path})


@receiver(user_locked_out, dispatch_uid="core.audit_login_lockout")
def audit_lockout(sender, request=None, username=None, ip_address=None, **kwargs):
    audit_log(user=None, action="core.login_lockout", target=f"login as {str(username or '')[:150]!r}",
              result=AuditResult.DENIED, request=request,
              detail={"login_as": str(username or "")[:150], "path": getattr(request, "path", ""),
                      "cool_off_minutes": cool_off_minutes(request)})

