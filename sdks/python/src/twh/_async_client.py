"""The asynchronous client (the same API as ``Client``, awaited)."""

from __future__ import annotations

import logging
import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from datetime import datetime
from types import TracebackType
from typing import Any, TypeVar

import httpx

from . import _operations as ops
from ._core import (
    Operation,
    Response,
    RetryPolicy,
    interpret,
    make_settings,
    still_in_flight,
    transport_failure,
)
from ._operations import (
    DEFAULT_PAGE_SIZE,
    NOT_GIVEN,
    AdjustChangeLike,
    MoveChangeLike,
    NotGiven,
    SetChangeLike,
)
from .models import (
    Item,
    ItemStatus,
    Location,
    LocationKind,
    Movement,
    MovementReason,
    Page,
    QuantityState,
    StockChange,
    StockLevel,
)

T = TypeVar("T")
log = logging.getLogger("twh")


async def _iterate(
    fetch: Callable[[str | None], Awaitable[Page[T]]], after: str | None = None
) -> AsyncIterator[T]:
    while True:
        page = await fetch(after)
        for node in page.nodes:
            yield node
        if not page.has_next_page or page.end_cursor is None:
            return
        after = page.end_cursor


class AsyncClient:
    """An asynchronous TWH client (``async with AsyncClient(...) as client``).

    ``api_key`` defaults to ``$TWH_API_KEY`` and ``base_url`` to ``$TWH_URL``, else
    ``http://127.0.0.1:8080``. Calls that fail on the network, with 429 or with 503 are retried
    (``max_retries``, exponential backoff with full jitter, ``Retry-After`` honoured); every
    mutation carries an idempotency key, generated when not given, that its retries reuse.
    Use it as an async context manager, or await ``aclose()``.
    """

    def __init__(
        self,
        api_key: str | None = None,
        *,
        base_url: str | None = None,
        timeout: float | httpx.Timeout | None = None,
        max_retries: int | None = None,
        retry: RetryPolicy | None = None,
        headers: Mapping[str, str] | None = None,
        http_client: httpx.AsyncClient | None = None,
    ) -> None:
        self._settings = make_settings(api_key, base_url, timeout, max_retries, retry, headers)
        self._owns_http = http_client is None
        self._http = http_client or httpx.AsyncClient(timeout=self._settings.timeout)
        self.items = AsyncItems(self)
        self.locations = AsyncLocations(self)
        self.stock_levels = AsyncStockLevels(self)
        self.movements = AsyncMovements(self)

    @property
    def endpoint(self) -> str:
        """The GraphQL endpoint the client posts to."""
        return self._settings.endpoint

    async def aclose(self) -> None:
        if self._owns_http:
            await self._http.aclose()

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def execute(self, operation: Operation[T]) -> T:
        """Sends one logical call, retrying it as its ``retry_safe`` allows."""
        policy = self._settings.retry
        retry = 0
        while True:
            try:
                http_response = await self._http.post(
                    self._settings.endpoint,
                    content=operation.body,
                    headers=self._settings.headers,
                    timeout=self._settings.timeout,
                )
            except httpx.TransportError as exc:
                outcome = transport_failure(exc, operation.retry_safe)
            else:
                result = interpret(http_response, operation.retry_safe)
                if isinstance(result, Response):
                    if (
                        operation.retry_safe
                        and retry < policy.max_retries
                        and still_in_flight(result.data)
                    ):
                        delay = policy.delay(retry)
                        log.info("twh: idempotency key still in flight; retrying in %.2fs", delay)
                        await asyncio.sleep(delay)
                        retry += 1
                        continue
                    return operation.parse(result)
                outcome = result
            if not outcome.retryable or retry >= policy.max_retries:
                raise outcome.error
            delay = policy.delay(retry, outcome.retry_after)
            log.info("twh: %s; retry %d in %.2fs", outcome.error, retry + 1, delay)
            await asyncio.sleep(delay)
            retry += 1

    # Raw GraphQL

    async def graphql(
        self,
        query: str,
        variables: Mapping[str, Any] | None = None,
        *,
        operation_name: str | None = None,
        idempotent: bool | None = None,
    ) -> dict[str, Any]:
        """Runs any document and returns its ``data``; top-level errors raise typed exceptions.

        Queries are retried; a mutation only when it passes an ``idempotencyKey`` variable or
        ``idempotent=True``. ``userErrors`` are returned as data, not raised.
        """
        return await self.execute(ops.raw(query, variables, operation_name, idempotent))

    def paginate(
        self,
        query: str,
        variables: Mapping[str, Any] | None = None,
        *,
        connection: str,
        page_size: int | None = None,
    ) -> AsyncIterator[dict[str, Any]]:
        """Iterates over the nodes of any Relay connection, following ``pageInfo.endCursor``.

        ``query`` declares ``$after: String`` (and ``$first: Int`` for ``page_size``) and selects
        ``nodes`` (or ``edges { node }``) and ``pageInfo { hasNextPage endCursor }`` of the
        connection at ``connection``, a dotted path in ``data`` such as ``"stockLevels"``.
        """
        path = connection.split(".")
        base = dict(variables or {})
        if page_size is not None:
            base["first"] = page_size

        async def fetch(after: str | None) -> Page[dict[str, Any]]:
            data = await self.graphql(query, {**base, "after": after}, idempotent=True)
            nodes, has_next, end = ops.connection_page(data, path)
            return Page(nodes, has_next, end)

        return _iterate(fetch, base.pop("after", None))

    # Stock

    async def stock_level(self, sku: str, location_code: str) -> StockLevel | None:
        """One SKU at one location (all zeros if it never moved; ``None`` if either is unknown)."""
        return await self.execute(ops.stock_level(sku, location_code))

    async def adjust_stock(
        self,
        changes: Sequence[AdjustChangeLike],
        *,
        reason: MovementReason | str,
        reference_document_uri: str | None = None,
        effective_at: datetime | None = None,
        idempotency_key: str | None = None,
    ) -> StockChange:
        """Adds or removes quantities (each change: ``sku``, ``location_code``, ``delta``, optional
        ``state`` and ``change_from_quantity``), atomically. Raises ``UserErrors``."""
        return await self.execute(
            ops.adjust_stock(changes, reason, reference_document_uri, effective_at, idempotency_key)
        )

    async def move_stock(
        self,
        changes: Sequence[MoveChangeLike],
        *,
        reason: MovementReason | str | None = None,
        reference_document_uri: str | None = None,
        effective_at: datetime | None = None,
        idempotency_key: str | None = None,
    ) -> StockChange:
        """Moves quantities between states and/or locations (each change: ``sku``, ``quantity``,
        ``from`` and ``to`` endpoints with ``location_code`` and ``state``)."""
        return await self.execute(
            ops.move_stock(changes, reason, reference_document_uri, effective_at, idempotency_key)
        )

    async def set_stock(
        self,
        changes: Sequence[SetChangeLike],
        *,
        reason: MovementReason | str | None = None,
        reference_document_uri: str | None = None,
        effective_at: datetime | None = None,
        idempotency_key: str | None = None,
    ) -> StockChange:
        """Sets absolute quantities (cycle counts; each change: ``sku``, ``location_code``,
        ``quantity``, optional ``state`` and ``change_from_quantity``)."""
        return await self.execute(
            ops.set_stock(changes, reason, reference_document_uri, effective_at, idempotency_key)
        )


class AsyncItems:
    def __init__(self, client: AsyncClient) -> None:
        self._client = client

    async def get(self, id: str | None = None, *, sku: str | None = None) -> Item | None:
        """One item by id or by SKU (exactly one), or ``None``."""
        return await self._client.execute(ops.get_item(id, sku))

    async def list(
        self,
        *,
        first: int | None = None,
        after: str | None = None,
        search: str | None = None,
        sku: str | None = None,
        skus: Sequence[str] | None = None,
        status: ItemStatus | str | None = None,
    ) -> Page[Item]:
        """One page of items in creation order."""
        return await self._client.execute(ops.list_items(first, after, search, sku, skus, status))

    def iterate(
        self,
        *,
        page_size: int = DEFAULT_PAGE_SIZE,
        search: str | None = None,
        sku: str | None = None,
        skus: Sequence[str] | None = None,
        status: ItemStatus | str | None = None,
    ) -> AsyncIterator[Item]:
        """Every matching item, fetching ``page_size`` at a time."""
        return _iterate(
            lambda after: self.list(
                first=page_size, after=after, search=search, sku=sku, skus=skus, status=status
            )
        )

    async def create(
        self,
        *,
        sku: str,
        name: str,
        barcode: str | None = None,
        unit: str | None = None,
        status: ItemStatus | str | None = None,
        attributes: Mapping[str, Any] | None = None,
        idempotency_key: str | None = None,
    ) -> Item:
        return await self._client.execute(
            ops.create_item(sku, name, barcode, unit, status, attributes, idempotency_key)
        )

    async def update(
        self,
        id: str,
        *,
        expected_version: int,
        sku: str | NotGiven = NOT_GIVEN,
        name: str | NotGiven = NOT_GIVEN,
        barcode: str | None | NotGiven = NOT_GIVEN,
        unit: str | NotGiven = NOT_GIVEN,
        status: ItemStatus | str | NotGiven = NOT_GIVEN,
        attributes: Mapping[str, Any] | NotGiven = NOT_GIVEN,
        idempotency_key: str | None = None,
    ) -> Item:
        """Changes the given fields if the item is still at ``expected_version``
        (else ``UserErrors`` with code ``VERSION_CONFLICT``). ``barcode=None`` clears it."""
        changes = dict(
            sku=sku, name=name, barcode=barcode, unit=unit, status=status, attributes=attributes
        )
        return await self._client.execute(
            ops.update_item(id, expected_version, changes, idempotency_key)
        )


class AsyncLocations:
    def __init__(self, client: AsyncClient) -> None:
        self._client = client

    async def get(self, id: str | None = None, *, code: str | None = None) -> Location | None:
        """One location by id or by code (exactly one), or ``None``."""
        return await self._client.execute(ops.get_location(id, code))

    async def list(
        self,
        *,
        first: int | None = None,
        after: str | None = None,
        code: str | None = None,
        kind: LocationKind | str | None = None,
    ) -> Page[Location]:
        return await self._client.execute(ops.list_locations(first, after, code, kind))

    def iterate(
        self,
        *,
        page_size: int = DEFAULT_PAGE_SIZE,
        code: str | None = None,
        kind: LocationKind | str | None = None,
    ) -> AsyncIterator[Location]:
        return _iterate(
            lambda after: self.list(first=page_size, after=after, code=code, kind=kind)
        )

    async def create(
        self,
        *,
        code: str,
        name: str,
        kind: LocationKind | str | None = None,
        allow_negative: bool | None = None,
        idempotency_key: str | None = None,
    ) -> Location:
        return await self._client.execute(
            ops.create_location(code, name, kind, allow_negative, idempotency_key)
        )

    async def update(
        self,
        id: str,
        *,
        expected_version: int,
        name: str | None = None,
        kind: LocationKind | str | None = None,
        allow_negative: bool | None = None,
        idempotency_key: str | None = None,
    ) -> Location:
        changes = dict(name=name, kind=kind, allow_negative=allow_negative)
        return await self._client.execute(
            ops.update_location(id, expected_version, changes, idempotency_key)
        )


class AsyncStockLevels:
    def __init__(self, client: AsyncClient) -> None:
        self._client = client

    async def list(
        self,
        *,
        first: int | None = None,
        after: str | None = None,
        sku: str | None = None,
        location_code: str | None = None,
    ) -> Page[StockLevel]:
        return await self._client.execute(ops.list_stock_levels(first, after, sku, location_code))

    def iterate(
        self,
        *,
        page_size: int = DEFAULT_PAGE_SIZE,
        sku: str | None = None,
        location_code: str | None = None,
    ) -> AsyncIterator[StockLevel]:
        return _iterate(
            lambda after: self.list(
                first=page_size, after=after, sku=sku, location_code=location_code
            )
        )


class AsyncMovements:
    def __init__(self, client: AsyncClient) -> None:
        self._client = client

    async def list(
        self,
        *,
        first: int | None = None,
        after: str | None = None,
        sku: str | None = None,
        location_code: str | None = None,
        state: QuantityState | str | None = None,
        reason: MovementReason | str | None = None,
        group_id: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
    ) -> Page[Movement]:
        """One page of ledger movements in the order they were recorded."""
        return await self._client.execute(
            ops.list_movements(
                first, after, sku, location_code, state, reason, group_id, since, until
            )
        )

    def iterate(
        self,
        *,
        page_size: int = DEFAULT_PAGE_SIZE,
        sku: str | None = None,
        location_code: str | None = None,
        state: QuantityState | str | None = None,
        reason: MovementReason | str | None = None,
        group_id: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
    ) -> AsyncIterator[Movement]:
        return _iterate(
            lambda after: self.list(
                first=page_size,
                after=after,
                sku=sku,
                location_code=location_code,
                state=state,
                reason=reason,
                group_id=group_id,
                since=since,
                until=until,
            )
        )
