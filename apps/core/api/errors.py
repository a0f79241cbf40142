"""API errors as field maps.

Error bodies:   400 -> {"detail": "Invalid input.", "errors": {"<field>": ["<reason>", ...]}}
                other -> {"detail": "<reason>"}  (401, 403, 404, 405, 409, 429 ...)
Non-field errors are under "non_field_errors". A service raising Django's ValidationError
(with a field dict) gives the same 400 body as a serializer error. A body over
DATA_UPLOAD_MAX_MEMORY_SIZE is a JSON 413 (Django alone would answer an HTML 400).
"""

from django.conf import settings
from django.core.exceptions import RequestDataTooBig, TooManyFieldsSent
from django.core.exceptions import ValidationError as DjangoValidationError
from rest_framework import status
from rest_framework import exceptions
from rest_framework.settings import api_settings
from rest_framework.views import exception_handler as drf_exception_handler


def _as_field_map(detail) -> dict:
    if isinstance(detail, dict):
        return {key: value if isinstance(value, (list, dict)) else [value] for key, value in detail.items()}
    if isinstance(detail, list):
        return {api_settings.NON_FIELD_ERRORS_KEY: detail}
    return {api_settings.NON_FIELD_ERRORS_KEY: [detail]}


class RequestTooLarge(exceptions.APIException):
    status_code = status.HTTP_413_REQUEST_ENTITY_TOO_LARGE
    default_code = "request_too_large"


def exception_handler(exc, context):
    """DRF's handler, with Django ValidationErrors mapped to 400 and 400s shaped as field maps."""
    if isinstance(exc, RequestDataTooBig):
        limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
        exc = RequestTooLarge(f"Request body too large: at most {limit} bytes (files upload as multipart).")
    elif isinstance(exc, TooManyFieldsSent):
        exc = exceptions.ParseError(f"Too many fields: at most {settings.DATA_UPLOAD_MAX_NUMBER_FIELDS}.")
    if isinstance(exc, DjangoValidationError):
        if hasattr(exc, "error_dict"):
            exc = exceptions.ValidationError(
                {
                    (api_settings.NON_FIELD_ERRORS_KEY if field == "__all__" else field): messages
                    for field, messages in exc.message_dict.items()
                }
            )
        else:
            exc = exceptions.ValidationError(exc.messages)
    response = drf_exception_handler(exc, context)
    if response is not None and isinstance(exc, exceptions.ValidationError):
        response.data = {"detail": "Invalid input.", "errors": _as_field_map(response.data)}
    return response
