"""Python SDK for The Warehouse Hub (TWH), a ledger-first inventory API.

``Client`` and ``AsyncClient`` call the GraphQL API; ``twh.errors`` holds the typed exceptions,
``twh.models`` the generated result and input models, ``twh.webhooks`` delivery verification.
"""

from ._async_client import AsyncClient
from ._client import Client
from ._core import RetryPolicy
from ._operations import NOT_GIVEN
from ._version import __version__
from .errors import (
    APIConnectionError,
    APITimeoutError,
    Forbidden,
    InternalError,
    InvalidInput,
    InvalidRequest,
    NotFound,
    RateLimited,
    RequestError,
    TWHError,
    Unauthenticated,
    Unavailable,
    UserErrors,
    WebhookVerificationError,
)
from .models import (
    AdjustChange,
    Counterparty,
    ErrorCode,
    Item,
    ItemStatus,
    Location,
    LocationKind,
    MoveChange,
    MoveEndpoint,
    Movement,
    MovementReason,
    Page,
    QuantityState,
    SetChange,
    StockChange,
    StockLevel,
    UserError,
)
from .webhooks import Webhook

__all__ = [
    "__version__",
    "APIConnectionError",
    "APITimeoutError",
    "AdjustChange",
    "AsyncClient",
    "Client",
    "Counterparty",
    "ErrorCode",
    "Forbidden",
    "InternalError",
    "InvalidInput",
    "InvalidRequest",
    "Item",
    "ItemStatus",
    "Location",
    "LocationKind",
    "MoveChange",
    "MoveEndpoint",
    "Movement",
    "MovementReason",
    "NOT_GIVEN",
    "NotFound",
    "Page",
    "QuantityState",
    "RateLimited",
    "RequestError",
    "RetryPolicy",
    "SetChange",
    "StockChange",
    "StockLevel",
    "TWHError",
    "Unauthenticated",
    "Unavailable",
    "UserError",
    "UserErrors",
    "Webhook",
    "WebhookVerificationError",
]
