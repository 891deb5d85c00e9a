"""The public names of the generated models, and ``Page``.

Results (``Item``, ``StockLevel``, …) are the pydantic models ariadne-codegen generated from the
fragments in ``twh/graphql/fragments.graphql``: snake_case attributes, typed enums and datetimes.
Inputs (``AdjustChange``, ``MoveChange``, ``SetChange``, …) are the generated input types; the
client also accepts plain dicts with the same keys (snake_case or the schema's camelCase).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from ._generated.enums import (
    Counterparty,
    ErrorCode,
    ItemStatus,
    LocationKind,
    MovementReason,
    QuantityState,
)
from ._generated.fragments import (
    ItemFields as Item,
)
from ._generated.fragments import (
    LocationFields as Location,
)
from ._generated.fragments import (
    MovementFields as Movement,
)
from ._generated.fragments import (
    PageInfoFields as PageInfo,
)
from ._generated.fragments import (
    StockChangeFields as StockChange,
)
from ._generated.fragments import (
    StockLevelFields as StockLevel,
)
from ._generated.fragments import (
    UserErrorFields as UserError,
)
from ._generated.input_types import (
    AdjustChangeInput as AdjustChange,
)
from ._generated.input_types import (
    ItemFilter,
    LocationFilter,
    MovementFilter,
    StockLevelFilter,
)
from ._generated.input_types import (
    MoveChangeInput as MoveChange,
)
from ._generated.input_types import (
    MoveEndpointInput as MoveEndpoint,
)
from ._generated.input_types import (
    SetChangeInput as SetChange,
)

__all__ = [
    "AdjustChange",
    "Counterparty",
    "ErrorCode",
    "Item",
    "ItemFilter",
    "ItemStatus",
    "Location",
    "LocationFilter",
    "LocationKind",
    "MoveChange",
    "MoveEndpoint",
    "Movement",
    "MovementFilter",
    "MovementReason",
    "Page",
    "PageInfo",
    "QuantityState",
    "SetChange",
    "StockChange",
    "StockLevel",
    "StockLevelFilter",
    "UserError",
]

T = TypeVar("T")


@dataclass(frozen=True)
class Page(Generic[T]):
    """One page of a Relay connection. Pass ``end_cursor`` as ``after`` to get the next one."""

    nodes: list[T] = field(default_factory=list)
    has_next_page: bool = False
    end_cursor: str | None = None

    def __iter__(self) -> Iterator[T]:
        return iter(self.nodes)

    def __len__(self) -> int:
        return len(self.nodes)
