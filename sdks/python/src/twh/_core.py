"""What the sync and async clients share: settings, the retry policy, and turning an HTTP response
into data or a typed exception. No I/O happens here."""

from __future__ import annotations

import email.utils
import json
import os
import random
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import timezone
from typing import Any, Generic, TypeVar

import httpx

from ._version import __version__
from .errors import (
    APIConnectionError,
    APITimeoutError,
    RequestError,
    TWHError,
    request_error_class,
)

T = TypeVar("T")

DEFAULT_BASE_URL = "http://127.0.0.1:8080"
DEFAULT_TIMEOUT = 30.0
GRAPHQL_RESPONSE = "application/graphql-response+json"
USER_AGENT = f"twh-python/{__version__}"

#: Statuses that ask to come back later. 429 means the request was not run; 503 may come after a
#: write was applied, so it is retried only when that is safe (a query, or an idempotency key).
RETRY_STATUSES = frozenset({429, 503})


@dataclass(frozen=True)
class RetryPolicy:
    """Exponential backoff with full jitter.

    Retry ``n`` (from 0) waits a random time in ``[0, min(max_delay, initial_delay * 2**n))``,
    unless the response carried ``Retry-After``, which is honoured up to ``max_retry_after``
    seconds. ``max_retries=0`` turns retries off.
    """

    max_retries: int = 3
    initial_delay: float = 0.5
    max_delay: float = 8.0
    max_retry_after: float = 60.0

    def delay(self, retry: int, retry_after: float | None = None) -> float:
        if retry_after is not None:
            return max(0.0, min(retry_after, self.max_retry_after))
        ceiling = min(self.max_delay, self.initial_delay * (2**retry))
        return random.uniform(0.0, ceiling)


def parse_retry_after(value: str | None, *, now: float | None = None) -> float | None:
    """``Retry-After`` as seconds from now: delta-seconds or an HTTP date (RFC 9110 10.2.3)."""
    if value is None:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    current = now if now is not None else time.time()
    return max(0.0, when.timestamp() - current)


@dataclass(frozen=True)
class Settings:
    api_key: str
    endpoint: str
    timeout: httpx.Timeout
    retry: RetryPolicy
    headers: dict[str, str]


def make_settings(
    api_key: str | None,
    base_url: str | None,
    timeout: float | httpx.Timeout | None,
    max_retries: int | None,
    retry: RetryPolicy | None,
    headers: Mapping[str, str] | None,
) -> Settings:
    key = api_key if api_key is not None else os.environ.get("TWH_API_KEY")
    if not key:
        raise ValueError("an API key is needed: pass api_key=... or set TWH_API_KEY")
    url = (base_url or os.environ.get("TWH_URL") or DEFAULT_BASE_URL).rstrip("/")
    if not url.endswith("/graphql"):
        url += "/graphql"
    policy = retry or RetryPolicy()
    if max_retries is not None:
        policy = RetryPolicy(
            max_retries=max_retries,
            initial_delay=policy.initial_delay,
            max_delay=policy.max_delay,
            max_retry_after=policy.max_retry_after,
        )
    all_headers = {
        "Accept": GRAPHQL_RESPONSE,
        "Content-Type": "application/json",
        "User-Agent": USER_AGENT,
        **(headers or {}),
        "Authorization": f"Bearer {key}",
    }
    return Settings(
        api_key=key,
        endpoint=url,
        timeout=timeout if isinstance(timeout, httpx.Timeout) else httpx.Timeout(
            DEFAULT_TIMEOUT if timeout is None else timeout
        ),
        retry=policy,
        headers=all_headers,
    )


@dataclass(frozen=True)
class Response:
    """A successful GraphQL response: ``data`` and what the HTTP response said about it."""

    data: dict[str, Any]
    request_id: str | None
    status: int
    replayed: bool


@dataclass
class Operation(Generic[T]):
    """One logical call: a document, its variables (idempotency key included, fixed for every
    retry), whether resending it is safe, and how to turn the data into the caller's result."""

    document: str
    variables: dict[str, Any]
    parse: Callable[[Response], T]
    operation_name: str | None = None
    retry_safe: bool = True
    body: bytes = field(init=False)

    def __post_init__(self) -> None:
        payload: dict[str, Any] = {"query": self.document, "variables": self.variables}
        if self.operation_name:
            payload["operationName"] = self.operation_name
        # Serialised once, so every retry sends the same bytes.
        self.body = json.dumps(payload, separators=(",", ":")).encode()


@dataclass(frozen=True)
class Retry:
    """An attempt that may be tried again: the error to raise if not, and the server's hint."""

    error: TWHError
    retry_after: float | None
    retryable: bool


def transport_failure(exc: httpx.TransportError, retry_safe: bool) -> Retry:
    cls = APITimeoutError if isinstance(exc, httpx.TimeoutException) else APIConnectionError
    error = cls(f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__)
    error.__cause__ = exc
    return Retry(error=error, retry_after=None, retryable=retry_safe)


def _request_id(headers: httpx.Headers, errors: list[dict[str, Any]]) -> str | None:
    rid = headers.get("x-request-id")
    if rid:
        return str(rid)
    for err in errors:
        ext = err.get("extensions")
        if isinstance(ext, dict) and isinstance(ext.get("requestId"), str) and ext["requestId"]:
            return str(ext["requestId"])
    return None


def _request_failure(response: httpx.Response, body: Any) -> RequestError:
    errors: list[dict[str, Any]] = []
    if isinstance(body, dict) and isinstance(body.get("errors"), list):
        errors = [e for e in body["errors"] if isinstance(e, dict)]
    first = errors[0] if errors else {}
    ext = first.get("extensions") if isinstance(first.get("extensions"), dict) else {}
    code = ext.get("code") if isinstance(ext, dict) and isinstance(ext.get("code"), str) else None
    path = first.get("path")
    field = [str(p) for p in path] if isinstance(path, list) else None
    message = first.get("message") if isinstance(first.get("message"), str) else None
    if message is None:
        text = response.text.strip()
        message = f"HTTP {response.status_code}" + (f": {text[:200]}" if text else "")
    status = response.status_code
    cls = request_error_class(code, status if status >= 400 else None)
    return cls(
        message,
        code=code,
        field=field,
        request_id=_request_id(response.headers, errors),
        status=status,
        errors=errors,
        retry_after=parse_retry_after(response.headers.get("retry-after")),
    )


def interpret(response: httpx.Response, retry_safe: bool) -> Response | Retry:
    """Data on success; otherwise the typed error and whether another attempt may help."""
    try:
        body: Any = response.json()
    except ValueError:
        body = None
    data = body.get("data") if isinstance(body, dict) else None
    errors = body.get("errors") if isinstance(body, dict) else None
    if response.is_success and isinstance(data, dict) and not errors:
        return Response(
            data=data,
            request_id=response.headers.get("x-request-id"),
            status=response.status_code,
            replayed=response.headers.get("idempotent-replayed", "").lower() == "true",
        )
    error = _request_failure(response, body)
    if response.status_code == 429:
        retryable = True  # refused before it ran
    elif response.status_code in RETRY_STATUSES:
        retryable = retry_safe
    else:
        retryable = False
    return Retry(error=error, retry_after=error.retry_after, retryable=retryable)


def still_in_flight(data: Mapping[str, Any]) -> bool:
    """Whether a mutation payload says another request holding its idempotency key is running
    (``IDEMPOTENCY_CONCURRENT_REQUEST``): what happens when a retry overtakes its first attempt."""
    for payload in data.values():
        if isinstance(payload, dict):
            for err in payload.get("userErrors") or ():
                if isinstance(err, dict) and err.get("code") == "IDEMPOTENCY_CONCURRENT_REQUEST":
                    return True
    return False


_MUTATION = re.compile(r"^\s*mutation\b", re.MULTILINE)
_COMMENT = re.compile(r"#[^\n]*")


def looks_like_mutation(document: str) -> bool:
    return bool(_MUTATION.search(_COMMENT.sub("", document)))
