"""The API's answers to errors: domain errors mapped to statuses, and the spec's envelope.

A use case raises a `hub.errors.DomainError` without knowing about HTTP; this table says what
the API answers for each (the most specific class in the error's ancestry wins). The API's own
refusals (`ApiError`: 400, 429, 503) carry their status already.
"""

from __future__ import annotations

from aiohttp import web

from hub.api.http import json_response
from hub.errors import (
    ApiError,
    Conflict,
    DomainError,
    ErrorItem,
    NotFound,
    Overloaded,
    PayloadTooLarge,
    PermissionDenied,
    QuotaExceeded,
    Unauthenticated,
    ValidationFailed,
)

#: Status and title for each domain error.
ANSWERS: dict[type[DomainError], tuple[int, str]] = {
    Unauthenticated: (401, "Unauthorized"),
    PermissionDenied: (403, "Forbidden"),
    NotFound: (404, "Not Found"),
    Conflict: (409, "Conflict"),
    PayloadTooLarge: (413, "Payload Too Large"),
    QuotaExceeded: (422, "Quota Exceeded"),
    ValidationFailed: (422, "Validation Error"),
    Overloaded: (503, "Service Unavailable"),
    DomainError: (400, "Bad Request"),
}


def api_error(error: DomainError) -> ApiError:
    """The API's answer to a use case's refusal: one error object per problem."""
    status, title = next(ANSWERS[cls] for cls in type(error).__mro__ if cls in ANSWERS)
    answer = ApiError(error.detail)
    answer.status, answer.title = status, title
    answer.items = [ErrorItem(status, title, detail, source) for detail, source in error.problems]
    if isinstance(error, Overloaded):
        answer.headers = {"Retry-After": str(error.retry_after)}
    return answer


def error_response(
    items: list[ErrorItem], status: int, headers: dict[str, str] | None = None
) -> web.Response:
    """`{"errors": [{status, title, detail, source?}, …]}` with `status`."""
    body = {
        "errors": [
            {"status": i.status, "title": i.title, "detail": i.detail}
            | ({"source": i.source} if i.source is not None else {})
            for i in items
        ]
    }
    response = json_response(body, status=status)
    response.headers.update(headers or {})
    return response
