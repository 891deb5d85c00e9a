from datetime import datetime
from typing import Any, Optional

from pydantic import Field

from .base_model import BaseModel
from .enums import (
    Disposition,
    ItemStatus,
    JobKind,
    JobStatus,
    LocationKind,
    MovementReason,
    QuantityState,
    Role,
    WebhookDeliveryStatus,
)


class AdjustChangeInput(BaseModel):
    change_from_quantity: Optional[int] = Field(
        alias="changeFromQuantity", default=None
    )
    "Compare-and-set: apply only if the quantity is exactly this now."
    delta: int
    "Signed, non-zero change."
    location_code: str = Field(alias="locationCode")
    sku: str
    state: QuantityState = QuantityState.AVAILABLE


class AdjustStockInput(BaseModel):
    changes: list["AdjustChangeInput"]
    effective_at: Optional[datetime] = Field(alias="effectiveAt", default=None)
    "When the change happened in the physical world; defaults to now."
    reason: MovementReason
    reference_document_uri: Optional[str] = Field(
        alias="referenceDocumentUri", default=None
    )
    "The document that caused the change, as a URI (e.g. `gid://pos/Sale/981`)."


class AuditEventFilter(BaseModel):
    action: Optional[str] = None
    actor: Optional[str] = None
    since: Optional[datetime] = None
    target_id: Optional[str] = Field(alias="targetId", default=None)
    target_type: Optional[str] = Field(alias="targetType", default=None)
    until: Optional[datetime] = None


class CreateApiKeyInput(BaseModel):
    name: str
    'What the key is for, e.g. "POS integration".'
    role: Role


class CreateItemInput(BaseModel):
    attributes: Optional[Any] = None
    "Free-form JSON object (at most 16 KiB)."
    barcode: Optional[str] = None
    name: str
    sku: str
    status: Optional[ItemStatus] = None
    unit: Optional[str] = None
    "Base unit of measure; defaults to `each`."


class CreateLocationInput(BaseModel):
    allow_negative: Optional[bool] = Field(alias="allowNegative", default=None)
    "Defaults to false."
    code: str
    kind: Optional[LocationKind] = None
    "Defaults to `WAREHOUSE`."
    name: str


class CreatePurchaseOrderInput(BaseModel):
    expected_at: Optional[datetime] = Field(alias="expectedAt", default=None)
    "When the goods are expected."
    external_reference: Optional[str] = Field(alias="externalReference", default=None)
    lines: list["PurchaseOrderLineInput"]
    notes: Optional[str] = None
    supplier: str


class CreateReservationInput(BaseModel):
    expires_in_seconds: int = Field(alias="expiresInSeconds")
    "How long the hold lasts: 1 second to 30 days."
    external_reference: Optional[str] = Field(alias="externalReference", default=None)
    "The cart or checkout this hold is for."
    location_code: str = Field(alias="locationCode")
    quantity: int
    sku: str


class CreateReturnOrderInput(BaseModel):
    customer: Optional[str] = None
    external_reference: Optional[str] = Field(alias="externalReference", default=None)
    lines: list["ReturnLineInput"]
    notes: Optional[str] = None
    sales_order_id: Optional[str] = Field(alias="salesOrderId", default=None)
    "The sales order the goods were shipped on; at most what it shipped can come back."


class CreateSalesOrderInput(BaseModel):
    customer: str
    external_reference: Optional[str] = Field(alias="externalReference", default=None)
    lines: list["SalesOrderLineInput"]
    notes: Optional[str] = None


class CreateSessionInput(BaseModel):
    role: Optional[Role] = None
    "At most the minting key's role; by default the key's own."
    ttl_seconds: Optional[int] = Field(alias="ttlSeconds", default=None)
    "60 to 43200 seconds (12 hours); by default 3600."


class CreateTenantInput(BaseModel):
    name: str
    plan: Optional[str] = None
    "Defaults to free."


class CreateTransferInput(BaseModel):
    external_reference: Optional[str] = Field(alias="externalReference", default=None)
    from_location_code: str = Field(alias="fromLocationCode")
    lines: list["TransferLineInput"]
    notes: Optional[str] = None
    to_location_code: str = Field(alias="toLocationCode")


class CreateWebhookEndpointInput(BaseModel):
    description: Optional[str] = None
    event_types: Optional[list[str]] = Field(alias="eventTypes", default=None)
    "Event types (`stock.changed`) or patterns (`sales_order.*`); empty or absent: every event."
    url: str
    "Where deliveries are POSTed: `https://…` (or `http://…`), a public address."


class EventFilter(BaseModel):
    since: Optional[datetime] = None
    "Events created at or after this time."
    types: Optional[list[str]] = None
    "Event types, or `prefix.*` patterns."
    until: Optional[datetime] = None
    "Events created before this time."


class ItemFilter(BaseModel):
    search: Optional[str] = None
    "Case-sensitive substring of the name or SKU."
    sku: Optional[str] = None
    skus: Optional[list[str]] = None
    status: Optional[ItemStatus] = None


class JobFilter(BaseModel):
    kind: Optional[JobKind] = None
    status: Optional[JobStatus] = None


class LocationFilter(BaseModel):
    code: Optional[str] = None
    kind: Optional[LocationKind] = None


class MoveChangeInput(BaseModel):
    from_: "MoveEndpointInput" = Field(alias="from")
    quantity: int
    "Positive quantity to move."
    sku: str
    to: "MoveEndpointInput"


class MoveEndpointInput(BaseModel):
    change_from_quantity: Optional[int] = Field(
        alias="changeFromQuantity", default=None
    )
    location_code: str = Field(alias="locationCode")
    state: QuantityState = QuantityState.AVAILABLE


class MoveStockInput(BaseModel):
    changes: list["MoveChangeInput"]
    effective_at: Optional[datetime] = Field(alias="effectiveAt", default=None)
    reason: MovementReason = MovementReason.MOVEMENT
    reference_document_uri: Optional[str] = Field(
        alias="referenceDocumentUri", default=None
    )


class MovementFilter(BaseModel):
    group_id: Optional[str] = Field(alias="groupId", default=None)
    location_code: Optional[str] = Field(alias="locationCode", default=None)
    reason: Optional[MovementReason] = None
    reference_document_uri: Optional[str] = Field(
        alias="referenceDocumentUri", default=None
    )
    "Movements a document made, e.g. `twh://purchase-orders/po_…`."
    since: Optional[datetime] = None
    "Recorded at or after this instant."
    sku: Optional[str] = None
    state: Optional[QuantityState] = None
    until: Optional[datetime] = None
    "Recorded before this instant."


class OrderFilter(BaseModel):
    """Filters every document list takes."""

    created_after: Optional[datetime] = Field(alias="createdAfter", default=None)
    created_before: Optional[datetime] = Field(alias="createdBefore", default=None)
    external_reference: Optional[str] = Field(alias="externalReference", default=None)
    location_code: Optional[str] = Field(alias="locationCode", default=None)
    "Documents with a line at this location."
    sku: Optional[str] = None
    "Documents with a line of this SKU."
    statuses: Optional[list[str]] = None
    "Raw status values, e.g. `ORDERED`."


class PurchaseOrderLineInput(BaseModel):
    location_code: str = Field(alias="locationCode")
    "Where the goods will be received."
    quantity: int
    sku: str
    unit_cost: Optional[str] = Field(alias="unitCost", default=None)
    'Decimal amount per unit, e.g. "4.25".'


class ReceiptLineInput(BaseModel):
    location_code: str = Field(alias="locationCode")
    quantity: int
    sku: str


class ReplayWebhookDeliveriesInput(BaseModel):
    delivery_ids: Optional[list[str]] = Field(alias="deliveryIds", default=None)
    "Replays exactly these deliveries, whatever their status."
    endpoint_id: Optional[str] = Field(alias="endpointId", default=None)
    "Replays this endpoint's deliveries (with `since`/`until`, those created in the range)."
    since: Optional[datetime] = None
    statuses: Optional[list[WebhookDeliveryStatus]] = None
    "Which deliveries of the endpoint a range replay takes; `[DEAD]` by default."
    until: Optional[datetime] = None


class ReturnLineInput(BaseModel):
    disposition: Disposition
    location_code: str = Field(alias="locationCode")
    "Where the goods come back to."
    quantity: int
    sku: str


class SalesOrderLineInput(BaseModel):
    location_code: str = Field(alias="locationCode")
    "Where the goods ship from."
    quantity: int
    sku: str
    unit_price: Optional[str] = Field(alias="unitPrice", default=None)
    'Decimal amount per unit, e.g. "19.90".'


class SearchFilter(BaseModel):
    """Narrows a search."""

    in_stock: Optional[bool] = Field(alias="inStock", default=None)
    "Items with (true) or without (false) stock available somewhere."
    location_code: Optional[str] = Field(alias="locationCode", default=None)
    "Items available at this location; documents with a line or move there."
    statuses: Optional[list[str]] = None
    "Raw status values, e.g. `ACTIVE`, `ORDERED`."


class SetChangeInput(BaseModel):
    change_from_quantity: Optional[int] = Field(
        alias="changeFromQuantity", default=None
    )
    location_code: str = Field(alias="locationCode")
    quantity: int
    "The absolute quantity to set."
    sku: str
    state: QuantityState = QuantityState.AVAILABLE


class SetReorderPointInput(BaseModel):
    location_code: str = Field(alias="locationCode")
    reorder_point: Optional[int] = Field(alias="reorderPoint", default=None)
    "The `available` quantity at or below which `REPORT_LOW_STOCK` lists the level; null\nremoves it."
    sku: str


class SetStockInput(BaseModel):
    changes: list["SetChangeInput"]
    effective_at: Optional[datetime] = Field(alias="effectiveAt", default=None)
    reason: MovementReason = MovementReason.CYCLE_COUNT
    reference_document_uri: Optional[str] = Field(
        alias="referenceDocumentUri", default=None
    )


class ShipmentLineInput(BaseModel):
    location_code: str = Field(alias="locationCode")
    quantity: int
    sku: str


class StartJobInput(BaseModel):
    delay_seconds: Optional[int] = Field(alias="delaySeconds", default=None)
    "Start no sooner than this many seconds from now (at most 30 days): an export for the\nnight, a report after the day's receipts."
    input_artifact: Optional[str] = Field(alias="inputArtifact", default=None)
    "The uploaded file an import reads (`POST /v1/artifacts`)."
    kind: JobKind
    params: Optional[Any] = None
    "JSON: imports take `dryRun` (false) and `errorPolicy` (`REJECT_EVERYTHING` |\n`REJECT_FAILED_ROWS`); exports and reports their filters."


class StockLevelFilter(BaseModel):
    location_code: Optional[str] = Field(alias="locationCode", default=None)
    sku: Optional[str] = None


class TransferLineInput(BaseModel):
    quantity: int
    sku: str


class TransferReceiptLineInput(BaseModel):
    quantity: int
    sku: str


class UpdateItemInput(BaseModel):
    attributes: Optional[Any] = None
    barcode: Optional[str] = None
    "`null` clears the barcode."
    name: Optional[str] = None
    sku: Optional[str] = None
    status: Optional[ItemStatus] = None
    unit: Optional[str] = None


class UpdateLocationInput(BaseModel):
    allow_negative: Optional[bool] = Field(alias="allowNegative", default=None)
    kind: Optional[LocationKind] = None
    name: Optional[str] = None


class UpdatePurchaseOrderInput(BaseModel):
    expected_at: Optional[datetime] = Field(alias="expectedAt", default=None)
    "`null` clears it."
    external_reference: Optional[str] = Field(alias="externalReference", default=None)
    "`null` clears it."
    lines: Optional[list["PurchaseOrderLineInput"]] = None
    "Replaces every line."
    notes: Optional[str] = None
    "`null` clears it."
    supplier: Optional[str] = None


class UpdateSearchSynonymsInput(BaseModel):
    groups: list[list[str]]
    "Groups of single words (2 to 20 each, at most 200 groups); replaces every group."


class UpdateTenantPlanInput(BaseModel):
    overrides: Optional[Any] = None
    'A JSON object of limits over the plan\'s (e.g. `{"callLimit": 5000000}`); null clears.'
    plan: str
    tenant_id: str = Field(alias="tenantId")


class UpdateWebhookEndpointInput(BaseModel):
    description: Optional[str] = None
    enabled: Optional[bool] = None
    "`false` disables the endpoint (deliveries wait), `true` enables it again."
    event_types: Optional[list[str]] = Field(alias="eventTypes", default=None)
    url: Optional[str] = None


class WebhookDeliveryFilter(BaseModel):
    endpoint_id: Optional[str] = Field(alias="endpointId", default=None)
    event_type: Optional[str] = Field(alias="eventType", default=None)
    status: Optional[WebhookDeliveryStatus] = None


AdjustStockInput.model_rebuild()
CreatePurchaseOrderInput.model_rebuild()
CreateReturnOrderInput.model_rebuild()
CreateSalesOrderInput.model_rebuild()
CreateTransferInput.model_rebuild()
MoveChangeInput.model_rebuild()
MoveStockInput.model_rebuild()
SetStockInput.model_rebuild()
UpdatePurchaseOrderInput.model_rebuild()
