"""Typed exceptions: one base class, request-level failures by code, and mutation ``userErrors``.

Every exception carries ``code`` (the API's stable error code, e.g. ``"VERSION_CONFLICT"``),
``field`` (the path to the input or response field at fault, or ``None``), ``request_id`` (quote it
when reporting a problem) and ``status`` (the HTTP status, or ``None`` when no response came back).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .models import UserError

__all__ = [
    "TWHError",
    "APIConnectionError",
    "APITimeoutError",
    "RequestError",
    "Unauthenticated",
    "Forbidden",
    "RateLimited",
    "Unavailable",
    "InvalidRequest",
    "InvalidInput",
    "NotFound",
    "InternalError",
    "UserErrors",
    "WebhookVerificationError",
]


class TWHError(Exception):
    """Base class of every error the SDK raises."""

    def __init__(
        self,
        message: str,
        *,
        code: str | None = None,
        field: Sequence[str] | None = None,
        request_id: str | None = None,
        status: int | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.code = code
        self.field: list[str] | None = list(field) if field is not None else None
        self.request_id = request_id
        self.status = status

    def __str__(self) -> str:
        parts = [self.message]
        details = [
            f"{name}={value}"
            for name, value in (
                ("code", self.code),
                ("field", ".".join(self.field) if self.field else None),
                ("status", self.status),
                ("request_id", self.request_id),
            )
            if value is not None
        ]
        if details:
            parts.append(f"({', '.join(details)})")
        return " ".join(parts)


class APIConnectionError(TWHError):
    """No usable HTTP response arrived (connection refused or dropped), after any retries."""


class APITimeoutError(APIConnectionError):
    """The request timed out, after any retries."""


class RequestError(TWHError):
    """The server refused the whole request: GraphQL top-level ``errors`` with ``extensions.code``.

    ``errors`` holds every error object of the response as sent.
    """

    def __init__(
        self,
        message: str,
        *,
        code: str | None = None,
        field: Sequence[str] | None = None,
        request_id: str | None = None,
        status: int | None = None,
        errors: Sequence[Mapping[str, Any]] = (),
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message, code=code, field=field, request_id=request_id, status=status)
        self.errors = [dict(e) for e in errors]
        self.retry_after = retry_after


class Unauthenticated(RequestError):
    """``UNAUTHENTICATED`` (401): no API key, or one the server does not know."""


class Forbidden(RequestError):
    """``FORBIDDEN`` (403): the key is valid but its role may not do this."""


class RateLimited(RequestError):
    """``RATE_LIMITED`` (429), still refused after the retries; see ``retry_after``."""


class Unavailable(RequestError):
    """``UNAVAILABLE`` (503), still refused after the retries. A write sent with an idempotency key
    can be sent again with the same key: it applies at most once."""


class InvalidRequest(RequestError):
    """The request itself is wrong: ``BAD_REQUEST``, ``GRAPHQL_PARSE_FAILED``,
    ``GRAPHQL_VALIDATION_FAILED``, ``PAYLOAD_TOO_LARGE``, ``UNSUPPORTED_MEDIA_TYPE``."""


class InvalidInput(RequestError):
    """An argument of a query is malformed or out of range (``INVALID_INPUT``)."""


class NotFound(RequestError):
    """``NOT_FOUND`` as a request-level error."""


class InternalError(RequestError):
    """``INTERNAL`` (500): the server failed; quote ``request_id`` when reporting it."""


class UserErrors(TWHError):
    """A mutation ran but refused the change: its payload's ``userErrors``.

    ``code``, ``field`` and ``message`` are the first error's; ``errors`` has them all. Nothing was
    changed (mutations are atomic).
    """

    def __init__(
        self,
        errors: Sequence[UserError],
        *,
        request_id: str | None = None,
        status: int | None = None,
    ) -> None:
        if not errors:
            raise ValueError("UserErrors needs at least one error")
        first = errors[0]
        message = first.message
        if len(errors) > 1:
            message += f" (and {len(errors) - 1} more)"
        super().__init__(
            message,
            code=first.code.value,
            field=first.field,
            request_id=request_id,
            status=status,
        )
        self.errors = list(errors)

    @property
    def codes(self) -> list[str]:
        """Every error's code, in order."""
        return [e.code.value for e in self.errors]


class WebhookVerificationError(TWHError):
    """A webhook's headers or signature did not verify; do not trust its body."""


_BY_CODE: dict[str, type[RequestError]] = {
    "UNAUTHENTICATED": Unauthenticated,
    "FORBIDDEN": Forbidden,
    "RATE_LIMITED": RateLimited,
    "UNAVAILABLE": Unavailable,
    "BAD_REQUEST": InvalidRequest,
    "GRAPHQL_PARSE_FAILED": InvalidRequest,
    "GRAPHQL_VALIDATION_FAILED": InvalidRequest,
    "PAYLOAD_TOO_LARGE": InvalidRequest,
    "UNSUPPORTED_MEDIA_TYPE": InvalidRequest,
    "INVALID_INPUT": InvalidInput,
    "NOT_FOUND": NotFound,
    "INTERNAL": InternalError,
}

_BY_STATUS: dict[int, type[RequestError]] = {
    400: InvalidRequest,
    401: Unauthenticated,
    403: Forbidden,
    404: NotFound,
    413: InvalidRequest,
    415: InvalidRequest,
    422: InvalidInput,
    429: RateLimited,
    500: InternalError,
    503: Unavailable,
}


def request_error_class(code: str | None, status: int | None) -> type[RequestError]:
    """The exception class for a request-level failure: by code first, then by HTTP status."""
    if code is not None and code in _BY_CODE:
        return _BY_CODE[code]
    if status is not None and status in _BY_STATUS:
        return _BY_STATUS[status]
    return RequestError
