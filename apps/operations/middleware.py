"""Redis unreachable during a request: a 503 with the reason (JSON for the API), never a 500 page.

Requests that only read PostgreSQL keep working while Redis is down; a request that must queue
work (QueueUnavailable: nothing was saved) or that touched Redis (cache, channel layer) gets
503 + Retry-After, so clients know to try again rather than that the server broke.
"""

from __future__ import annotations

import logging

import redis
from django.http import HttpResponse, JsonResponse
from django.utils.html import format_html
from kombu.exceptions import OperationalError

from .services import QueueUnavailable

logger = logging.getLogger(__name__)
RETRY_AFTER = "10"
_REDIS_DOWN = (QueueUnavailable, redis.ConnectionError, redis.TimeoutError, OperationalError)


def redis_down_reason(exc: BaseException) -> str:
    if isinstance(exc, QueueUnavailable):
        return str(exc)
    return f"Redis (task queue and live updates) is unreachable ({exc}); try again in a moment"


class RedisUnavailableMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        return self.get_response(request)

    def process_exception(self, request, exc):
        if not isinstance(exc, _REDIS_DOWN):
            return None
        reason = redis_down_reason(exc)
        logger.warning("%s %s: %s", request.method, request.path, reason)
        wants_json = request.path.startswith("/api/") or "json" in request.headers.get("Accept", "")
        if wants_json:
            response = JsonResponse({"detail": reason}, status=503)
        else:
            response = HttpResponse(format_html('<p class="error" role="alert">{}</p>', reason), status=503)
        response["Retry-After"] = RETRY_AFTER
        return response
