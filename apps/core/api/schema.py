"""OpenAPI: the error answers every operation can give, added where they occur.

Every operation may answer 403 (not logged in / not allowed) and 429 (rate limit); those with a
path parameter or pages 404; those that take a body or query filters 400 (a field map); those that take a
body 413 (too large); writes 409 (Proxmox or the object's state refuses) and 503 (the queue is
unreachable). Views that document a code themselves keep their own description.
"""

from drf_spectacular.openapi import AutoSchema as SpectacularAutoSchema
from drf_spectacular.utils import OpenApiResponse, inline_serializer
from rest_framework import serializers

ErrorSerializer = inline_serializer("Error", {
    "detail": serializers.CharField(help_text="What went wrong, for a person."),
    "proxmox_message": serializers.CharField(required=False, help_text="Proxmox's own words, when it refused."),
})
ValidationErrorSerializer = inline_serializer("ValidationError", {
    "detail": serializers.CharField(),
    "errors": serializers.DictField(
        child=serializers.JSONField(),
        help_text='Field name -> list of reasons ("non_field_errors" for the body as a whole).'),
})

ERROR_RESPONSES = {
    400: OpenApiResponse(ValidationErrorSerializer, description="Invalid input: reasons per field."),
    401: OpenApiResponse(ErrorSerializer, description="No credentials, or an invalid, expired or revoked token."),
    403: OpenApiResponse(ErrorSerializer, description="Not allowed (or a browser session without its CSRF token)."),
    404: OpenApiResponse(ErrorSerializer, description="No such object within your scope."),
    409: OpenApiResponse(ErrorSerializer, description="Refused in the object's current state, or by Proxmox."),
    413: OpenApiResponse(ErrorSerializer, description="Request body too large."),
    429: OpenApiResponse(ErrorSerializer, description="Too many requests (see Retry-After)."),
    503: OpenApiResponse(ErrorSerializer, description="The task queue cannot be reached; nothing was queued."),
}
WRITE_METHODS = {"POST", "PUT", "PATCH", "DELETE"}


class AutoSchema(SpectacularAutoSchema):
    def error_status_codes(self) -> list[int]:
        codes = [403, 429] if self._is_public() else [401, 403, 429]
        paged = self.method == "GET" and self._is_list_view() and self._get_paginator() is not None
        if "{" in self.path or paged:  # an object outside the caller's scope, or a page past the last
            codes.append(404)
        has_body = self.method in {"POST", "PUT", "PATCH"}
        has_query = self.method == "GET" and bool(self._get_filter_parameters())
        if has_body or has_query or self.method == "DELETE":  # a delete checks its path and query too
            codes.append(400)
        if has_body:
            codes.append(413)
        if self.method in WRITE_METHODS:
            codes += [409, 503]
        return sorted(codes)

    def _is_public(self) -> bool:
        # auth=[] in extend_schema (the token endpoint): no credentials to be refused.
        return self.get_auth() == []

    def _get_paginator(self):
        # Only GETs are paginated here; a POST answering a list (guests/bulk) answers a bare list.
        return super()._get_paginator() if self.method == "GET" else None

    def _get_response_bodies(self, direction="response"):
        responses = super()._get_response_bodies(direction)
        if direction != "response":
            return responses
        for code in self.error_status_codes():
            if str(code) not in responses:
                responses[str(code)] = self._get_response_for_code(ERROR_RESPONSES[code], str(code),
                                                                   direction=direction)
        return responses
