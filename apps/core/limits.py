"""What the API takes in: JSON that cannot exhaust the stack, and request rates.

Outside apps.core.api on purpose: DRF resolves DEFAULT_PARSER_CLASSES and DEFAULT_THROTTLE_CLASSES
while rest_framework.views is still loading, and that package imports rest_framework.views.

BoundedJSONParser: Python's json module recurses once per nesting level, so a body of 100,000 "["
raised RecursionError (a 500). Our API never takes more than a few levels: deeper bodies are a 400.

UserThrottle / AnonThrottle: per user (so per token) when authenticated, per address otherwise.
Rates come from REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"] at each request (DRF's own classes read
them once at import). Counters live in the cache (Redis); when it cannot be reached the request
is let through rather than failing.
"""

import logging

from redis.exceptions import RedisError
from rest_framework.exceptions import ParseError
from rest_framework.parsers import JSONParser
from rest_framework.settings import api_settings
from rest_framework.throttling import AnonRateThrottle, UserRateThrottle

logger = logging.getLogger(__name__)

MAX_JSON_DEPTH = 32


def json_depth(value) -> int:
    """Nesting depth of parsed JSON (a scalar is 0), without recursion."""
    deepest = 0
    stack = [(value, 1)] if isinstance(value, (dict, list)) else []
    while stack:
        item, depth = stack.pop()
        deepest = max(deepest, depth)
        children = item.values() if isinstance(item, dict) else item
        stack.extend((child, depth + 1) for child in children if isinstance(child, (dict, list)))
    return deepest


class BoundedJSONParser(JSONParser):
    """JSONParser that answers 400 for bodies nested deeper than MAX_JSON_DEPTH."""

    max_depth = MAX_JSON_DEPTH

    def parse(self, stream, media_type=None, parser_context=None):
        try:
            data = super().parse(stream, media_type, parser_context)
        except RecursionError:
            raise ParseError(f"JSON parse error - nested deeper than {self.max_depth} levels.") from None
        if json_depth(data) > self.max_depth:
            raise ParseError(f"JSON parse error - nested deeper than {self.max_depth} levels.")
        return data


class _LiveRateMixin:
    def get_rate(self):
        return api_settings.DEFAULT_THROTTLE_RATES.get(self.scope)

    def allow_request(self, request, view):
        try:
            return super().allow_request(request, view)
        except (RedisError, OSError) as exc:
            logger.warning("API rate limit not checked, cache unreachable: %s", exc)
            return True


class UserThrottle(_LiveRateMixin, UserRateThrottle):
    """Requests per authenticated user (session or token); anonymous ones by address."""


class AnonThrottle(_LiveRateMixin, AnonRateThrottle):
    """Requests per address from callers that are not logged in (the token endpoint, mostly)."""


class MaxKeysValidator:
    """A DictField's bound: at most `limit` keys (DRF has max_length for lists only)."""

    def __init__(self, limit: int):
        self.limit = limit

    def __call__(self, value):
        from rest_framework.exceptions import ValidationError

        if len(value) > self.limit:
            raise ValidationError(f"at most {self.limit} entries, got {len(value)}")
