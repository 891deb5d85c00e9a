"""Builds each logical call once (document, variables, idempotency key, result parser); the sync
and async clients only send them. Documents and models come from ``_generated``."""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any, Final, TypeVar, Union

from pydantic import BaseModel

from ._core import Operation, Response, looks_like_mutation
from ._generated import documents
from ._generated.adjust_stock import AdjustStock
from ._generated.create_item import CreateItem
from ._generated.create_location import CreateLocation
from ._generated.get_item import GetItem
from ._generated.get_location import GetLocation
from ._generated.get_stock_level import GetStockLevel
from ._generated.input_types import (
    AdjustStockInput,
    CreateItemInput,
    CreateLocationInput,
    ItemFilter,
    LocationFilter,
    MovementFilter,
    MoveStockInput,
    SetStockInput,
    StockLevelFilter,
    UpdateItemInput,
    UpdateLocationInput,
)
from ._generated.list_items import ListItems
from ._generated.list_locations import ListLocations
from ._generated.list_movements import ListMovements
from ._generated.list_stock_levels import ListStockLevels
from ._generated.move_stock import MoveStock
from ._generated.set_stock import SetStock
from ._generated.update_item import UpdateItem
from ._generated.update_location import UpdateLocation
from .errors import UserErrors
from .models import (
    AdjustChange,
    Item,
    ItemStatus,
    Location,
    LocationKind,
    MoveChange,
    Movement,
    MovementReason,
    Page,
    PageInfo,
    QuantityState,
    SetChange,
    StockChange,
    StockLevel,
    UserError,
)

T = TypeVar("T")
M = TypeVar("M", bound=BaseModel)

#: The most a page may hold (the server refuses ``first`` above this).
MAX_PAGE_SIZE: Final = 250
DEFAULT_PAGE_SIZE: Final = 100


class NotGiven:
    """Marks an argument the caller left out, where ``None`` means "set to null"."""

    _instance: NotGiven | None = None

    def __new__(cls) -> NotGiven:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __bool__(self) -> bool:
        return False

    def __repr__(self) -> str:
        return "NOT_GIVEN"


NOT_GIVEN: Final = NotGiven()

AdjustChangeLike = Union[AdjustChange, Mapping[str, Any]]
MoveChangeLike = Union[MoveChange, Mapping[str, Any]]
SetChangeLike = Union[SetChange, Mapping[str, Any]]


def new_idempotency_key() -> str:
    return str(uuid.uuid4())


def _dump(model: BaseModel) -> dict[str, Any]:
    return model.model_dump(mode="json", by_alias=True, exclude_unset=True)


def _given(**values: Any) -> dict[str, Any]:
    """The arguments the caller gave (``None`` counts as not given)."""
    return {k: v for k, v in values.items() if v is not None and v is not NOT_GIVEN}


def _set(**values: Any) -> dict[str, Any]:
    """The arguments the caller gave (``None`` is kept: it sets the field to null)."""
    return {k: v for k, v in values.items() if v is not NOT_GIVEN}


def _raise_user_errors(errors: Sequence[UserError], response: Response) -> None:
    if errors:
        raise UserErrors(errors, request_id=response.request_id, status=response.status)


def _page(nodes: Iterable[T], info: PageInfo) -> Page[T]:
    return Page(nodes=list(nodes), has_next_page=info.has_next_page, end_cursor=info.end_cursor)


def _page_size(first: int | None) -> int | None:
    if first is not None and not 1 <= first <= MAX_PAGE_SIZE:
        raise ValueError(f"first must be between 1 and {MAX_PAGE_SIZE}, got {first}")
    return first


def _variables(**values: Any) -> dict[str, Any]:
    return {k: v for k, v in values.items() if v is not None}


# Items


def get_item(id: str | None, sku: str | None) -> Operation[Item | None]:
    if (id is None) == (sku is None):
        raise ValueError("give exactly one of id and sku")
    return Operation(
        documents.GET_ITEM,
        _variables(id=id, sku=sku),
        lambda r: GetItem.model_validate(r.data).item,
        "GetItem",
    )


def list_items(
    first: int | None,
    after: str | None,
    search: str | None,
    sku: str | None,
    skus: Sequence[str] | None,
    status: ItemStatus | str | None,
) -> Operation[Page[Item]]:
    filter_ = ItemFilter.model_validate(
        _given(search=search, sku=sku, skus=list(skus) if skus is not None else None, status=status)
    )

    def parse(r: Response) -> Page[Item]:
        conn = ListItems.model_validate(r.data).items
        return _page(conn.nodes, conn.page_info)

    return Operation(
        documents.LIST_ITEMS,
        _variables(filter=_dump(filter_) or None, first=_page_size(first), after=after),
        parse,
        "ListItems",
    )


def create_item(
    sku: str,
    name: str,
    barcode: str | None,
    unit: str | None,
    status: ItemStatus | str | None,
    attributes: Mapping[str, Any] | None,
    idempotency_key: str | None,
) -> Operation[Item]:
    input_ = CreateItemInput.model_validate(
        _given(
            sku=sku,
            name=name,
            barcode=barcode,
            unit=unit,
            status=status,
            attributes=dict(attributes) if attributes is not None else None,
        )
    )

    def parse(r: Response) -> Item:
        payload = CreateItem.model_validate(r.data).create_item
        _raise_user_errors(payload.user_errors, r)
        assert payload.item is not None
        return payload.item

    return Operation(
        documents.CREATE_ITEM,
        {"input": _dump(input_), "idempotencyKey": idempotency_key or new_idempotency_key()},
        parse,
        "CreateItem",
    )


def update_item(
    id: str,
    expected_version: int,
    changes: Mapping[str, Any],
    idempotency_key: str | None,
) -> Operation[Item]:
    input_ = UpdateItemInput.model_validate(_set(**changes))

    def parse(r: Response) -> Item:
        payload = UpdateItem.model_validate(r.data).update_item
        _raise_user_errors(payload.user_errors, r)
        assert payload.item is not None
        return payload.item

    return Operation(
        documents.UPDATE_ITEM,
        {
            "id": id,
            "expectedVersion": expected_version,
            "input": _dump(input_),
            "idempotencyKey": idempotency_key or new_idempotency_key(),
        },
        parse,
        "UpdateItem",
    )


# Locations


def get_location(id: str | None, code: str | None) -> Operation[Location | None]:
    if (id is None) == (code is None):
        raise ValueError("give exactly one of id and code")
    return Operation(
        documents.GET_LOCATION,
        _variables(id=id, code=code),
        lambda r: GetLocation.model_validate(r.data).location,
        "GetLocation",
    )


def list_locations(
    first: int | None,
    after: str | None,
    code: str | None,
    kind: LocationKind | str | None,
) -> Operation[Page[Location]]:
    filter_ = LocationFilter.model_validate(_given(code=code, kind=kind))

    def parse(r: Response) -> Page[Location]:
        conn = ListLocations.model_validate(r.data).locations
        return _page(conn.nodes, conn.page_info)

    return Operation(
        documents.LIST_LOCATIONS,
        _variables(filter=_dump(filter_) or None, first=_page_size(first), after=after),
        parse,
        "ListLocations",
    )


def create_location(
    code: str,
    name: str,
    kind: LocationKind | str | None,
    allow_negative: bool | None,
    idempotency_key: str | None,
) -> Operation[Location]:
    input_ = CreateLocationInput.model_validate(
        _given(code=code, name=name, kind=kind, allow_negative=allow_negative)
    )

    def parse(r: Response) -> Location:
        payload = CreateLocation.model_validate(r.data).create_location
        _raise_user_errors(payload.user_errors, r)
        assert payload.location is not None
        return payload.location

    return Operation(
        documents.CREATE_LOCATION,
        {"input": _dump(input_), "idempotencyKey": idempotency_key or new_idempotency_key()},
        parse,
        "CreateLocation",
    )


def update_location(
    id: str,
    expected_version: int,
    changes: Mapping[str, Any],
    idempotency_key: str | None,
) -> Operation[Location]:
    input_ = UpdateLocationInput.model_validate(_given(**changes))

    def parse(r: Response) -> Location:
        payload = UpdateLocation.model_validate(r.data).update_location
        _raise_user_errors(payload.user_errors, r)
        assert payload.location is not None
        return payload.location

    return Operation(
        documents.UPDATE_LOCATION,
        {
            "id": id,
            "expectedVersion": expected_version,
            "input": _dump(input_),
            "idempotencyKey": idempotency_key or new_idempotency_key(),
        },
        parse,
        "UpdateLocation",
    )


# Stock


def stock_level(sku: str, location_code: str) -> Operation[StockLevel | None]:
    return Operation(
        documents.GET_STOCK_LEVEL,
        {"sku": sku, "locationCode": location_code},
        lambda r: GetStockLevel.model_validate(r.data).stock_level,
        "GetStockLevel",
    )


def list_stock_levels(
    first: int | None,
    after: str | None,
    sku: str | None,
    location_code: str | None,
) -> Operation[Page[StockLevel]]:
    filter_ = StockLevelFilter.model_validate(_given(sku=sku, location_code=location_code))

    def parse(r: Response) -> Page[StockLevel]:
        conn = ListStockLevels.model_validate(r.data).stock_levels
        return _page(conn.nodes, conn.page_info)

    return Operation(
        documents.LIST_STOCK_LEVELS,
        _variables(filter=_dump(filter_) or None, first=_page_size(first), after=after),
        parse,
        "ListStockLevels",
    )


def list_movements(
    first: int | None,
    after: str | None,
    sku: str | None,
    location_code: str | None,
    state: QuantityState | str | None,
    reason: MovementReason | str | None,
    group_id: str | None,
    since: datetime | None,
    until: datetime | None,
) -> Operation[Page[Movement]]:
    filter_ = MovementFilter.model_validate(
        _given(
            sku=sku,
            location_code=location_code,
            state=state,
            reason=reason,
            group_id=group_id,
            since=since,
            until=until,
        )
    )

    def parse(r: Response) -> Page[Movement]:
        conn = ListMovements.model_validate(r.data).movements
        return _page(conn.nodes, conn.page_info)

    return Operation(
        documents.LIST_MOVEMENTS,
        _variables(filter=_dump(filter_) or None, first=_page_size(first), after=after),
        parse,
        "ListMovements",
    )


def _stock_change(
    document: str,
    operation_name: str,
    result: type[AdjustStock] | type[MoveStock] | type[SetStock],
    input_: BaseModel,
    idempotency_key: str | None,
) -> Operation[StockChange]:
    def parse(r: Response) -> StockChange:
        validated = result.model_validate(r.data)
        if isinstance(validated, AdjustStock):
            payload = validated.adjust_stock
        elif isinstance(validated, MoveStock):
            payload = validated.move_stock
        else:
            payload = validated.set_stock
        _raise_user_errors(payload.user_errors, r)
        return payload

    return Operation(
        document,
        {"input": _dump(input_), "idempotencyKey": idempotency_key or new_idempotency_key()},
        parse,
        operation_name,
    )


def _stock_input(
    model: type[M],
    changes: Sequence[Any],
    reason: Any,
    reference_document_uri: str | None,
    effective_at: datetime | None,
) -> M:
    if isinstance(changes, (str, bytes, Mapping)) or not changes:
        raise ValueError("changes must be a non-empty list of changes")
    return model.model_validate(
        _given(
            changes=list(changes),
            reason=reason,
            reference_document_uri=reference_document_uri,
            effective_at=effective_at,
        )
    )


def adjust_stock(
    changes: Sequence[AdjustChangeLike],
    reason: MovementReason | str,
    reference_document_uri: str | None,
    effective_at: datetime | None,
    idempotency_key: str | None,
) -> Operation[StockChange]:
    input_ = _stock_input(
        AdjustStockInput, changes, reason, reference_document_uri, effective_at
    )
    return _stock_change(
        documents.ADJUST_STOCK, "AdjustStock", AdjustStock, input_, idempotency_key
    )


def move_stock(
    changes: Sequence[MoveChangeLike],
    reason: MovementReason | str | None,
    reference_document_uri: str | None,
    effective_at: datetime | None,
    idempotency_key: str | None,
) -> Operation[StockChange]:
    input_ = _stock_input(MoveStockInput, changes, reason, reference_document_uri, effective_at)
    return _stock_change(documents.MOVE_STOCK, "MoveStock", MoveStock, input_, idempotency_key)


def set_stock(
    changes: Sequence[SetChangeLike],
    reason: MovementReason | str | None,
    reference_document_uri: str | None,
    effective_at: datetime | None,
    idempotency_key: str | None,
) -> Operation[StockChange]:
    input_ = _stock_input(SetStockInput, changes, reason, reference_document_uri, effective_at)
    return _stock_change(documents.SET_STOCK, "SetStock", SetStock, input_, idempotency_key)


# Raw GraphQL


def raw(
    query: str,
    variables: Mapping[str, Any] | None,
    operation_name: str | None,
    idempotent: bool | None,
) -> Operation[dict[str, Any]]:
    """A caller's own document. A query is resent on failure; a mutation only when it passes an
    ``idempotencyKey`` variable or the caller says ``idempotent=True``."""
    variables = dict(variables or {})
    if idempotent is None:
        idempotent = not looks_like_mutation(query) or bool(variables.get("idempotencyKey"))
    return Operation(
        query,
        variables,
        lambda r: r.data,
        operation_name,
        retry_safe=idempotent,
    )


def connection_page(
    data: Mapping[str, Any], path: Sequence[str]
) -> tuple[list[dict[str, Any]], bool, str | None]:
    """Nodes, ``hasNextPage`` and ``endCursor`` of the connection at ``path`` in ``data``."""
    node: Any = data
    for part in path:
        if not isinstance(node, Mapping) or part not in node:
            raise KeyError(f"no connection at {'.'.join(path)!r} in the response")
        node = node[part]
    if not isinstance(node, Mapping):
        raise KeyError(f"{'.'.join(path)!r} is not a connection")
    if "nodes" in node:
        nodes = list(node["nodes"])
    elif "edges" in node:
        nodes = [edge["node"] for edge in node["edges"]]
    else:
        raise KeyError(f"select nodes (or edges {{ node }}) of {'.'.join(path)!r}")
    info = node.get("pageInfo")
    if not isinstance(info, Mapping) or "hasNextPage" not in info or "endCursor" not in info:
        raise KeyError(f"select pageInfo {{ hasNextPage endCursor }} of {'.'.join(path)!r}")
    return nodes, bool(info["hasNextPage"]), info["endCursor"]
