"""API token authentication (django-rest-knox with permissions.ApiToken), for DRF and websockets.

`Authorization: Token <secret>`: request.user is the token's user and request.auth the ApiToken,
from which policy.actor_for_request takes the tenant and the read-only flag. Expired tokens are
refused (401) but kept, so their owners still see them listed as expired until they revoke them.
"""

from __future__ import annotations

import binascii
from datetime import timedelta
from hmac import compare_digest

from django.utils import timezone
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from drf_spectacular.plumbing import build_bearer_security_scheme_object
from knox.auth import TokenAuthentication
from knox.crypto import hash_token
from knox.settings import CONSTANTS
from rest_framework import exceptions

from .models import ApiToken

# last_used is written at most this often per token: not one write per request.
LAST_USED_EVERY = timedelta(minutes=1)
DEFAULT_EXPIRY_DAYS = 90
MAX_EXPIRY_DAYS = 365


def find_token(secret: str) -> ApiToken | None:
    """The live (unexpired, active user) token whose secret is `secret`, else None."""
    now = timezone.now()
    try:
        digest = hash_token(secret)
    except (TypeError, binascii.Error, ValueError):
        return None
    candidates = ApiToken.objects.filter(token_key=secret[:CONSTANTS.TOKEN_KEY_LENGTH])
    for token in candidates.select_related("user", "tenant"):
        if not compare_digest(digest, token.digest):
            continue
        if token.expiry is not None and token.expiry <= now:
            return None
        if not token.user.is_active:
            return None
        return token
    return None


def record_use(token: ApiToken, address: str | None) -> None:
    """Stamp last_used / last_used_from, at most once a minute per token (not a write per request)."""
    now = timezone.now()
    if token.last_used is not None and now - token.last_used < LAST_USED_EVERY:
        return
    token.last_used, token.last_used_from = now, address or None
    ApiToken.objects.filter(digest=token.digest).update(last_used=now, last_used_from=address or None)


class ApiTokenAuthentication(TokenAuthentication):
    """knox's header parsing; our lookup (expired tokens refused, not deleted) and last use."""

    def authenticate_credentials(self, token):
        secret = token.decode("utf-8", errors="replace") if isinstance(token, bytes) else str(token)
        found = find_token(secret)
        if found is None:
            raise exceptions.AuthenticationFailed("Invalid, expired or revoked token.")
        request = getattr(self, "_request", None)
        record_use(found, request.META.get("REMOTE_ADDR") if request is not None else None)
        return found.user, found

    def authenticate(self, request):
        self._request = request
        try:
            return super().authenticate(request)
        finally:
            self._request = None


class ApiTokenScheme(OpenApiAuthenticationExtension):
    """OpenAPI: `Authorization: Token <secret>` (tokens from /api/v1/tokens/ or /api/v1/auth/token/)."""

    target_class = "apps.permissions.auth.ApiTokenAuthentication"
    name = "apiToken"

    def get_security_definition(self, auto_schema):
        scheme = build_bearer_security_scheme_object(header_name="Authorization", token_prefix="Token")
        scheme["description"] = "An API token: `Authorization: Token <secret>`."
        return scheme
