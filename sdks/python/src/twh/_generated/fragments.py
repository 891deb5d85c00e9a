from datetime import datetime
from typing import Any, Optional

from pydantic import Field

from .base_model import BaseModel
from .enums import (
    Counterparty,
    ErrorCode,
    ItemStatus,
    LocationKind,
    MovementReason,
    QuantityState,
)


class ItemFields(BaseModel):
    id: str
    sku: str
    name: str
    barcode: Optional[str]
    unit: str
    status: ItemStatus
    attributes: Any
    version: int
    created_at: datetime = Field(alias="createdAt")
    updated_at: datetime = Field(alias="updatedAt")


class LocationFields(BaseModel):
    id: str
    code: str
    name: str
    kind: LocationKind
    allow_negative: bool = Field(alias="allowNegative")
    version: int
    created_at: datetime = Field(alias="createdAt")
    updated_at: datetime = Field(alias="updatedAt")


class MovementFields(BaseModel):
    id: str
    group_id: str = Field(alias="groupId")
    sku: str
    item_id: str = Field(alias="itemId")
    location_code: str = Field(alias="locationCode")
    location_id: str = Field(alias="locationId")
    state: QuantityState
    delta: int
    quantity_after_change: int = Field(alias="quantityAfterChange")
    sequence: int
    reason: MovementReason
    counterparty: Counterparty
    counterparty_location_code: Optional[str] = Field(alias="counterpartyLocationCode")
    counterparty_state: Optional[QuantityState] = Field(alias="counterpartyState")
    actor: str
    reference_document_uri: Optional[str] = Field(alias="referenceDocumentUri")
    effective_at: datetime = Field(alias="effectiveAt")
    recorded_at: datetime = Field(alias="recordedAt")


class PageInfoFields(BaseModel):
    has_next_page: bool = Field(alias="hasNextPage")
    end_cursor: Optional[str] = Field(alias="endCursor")


class StockLevelFields(BaseModel):
    sku: str
    location_code: str = Field(alias="locationCode")
    item_id: str = Field(alias="itemId")
    location_id: str = Field(alias="locationId")
    on_hand: int = Field(alias="onHand")
    available: int
    committed: int
    reserved: int
    incoming: int
    damaged: int
    safety_stock: int = Field(alias="safetyStock")
    quality_control: int = Field(alias="qualityControl")
    sequence: int
    version: int
    updated_at: datetime = Field(alias="updatedAt")


class UserErrorFields(BaseModel):
    code: ErrorCode
    field: Optional[list[str]]
    message: str


class StockChangeFields(BaseModel):
    group_id: Optional[str] = Field(alias="groupId")
    movements: list["StockChangeFieldsMovements"]
    levels: list["StockChangeFieldsLevels"]
    user_errors: list["StockChangeFieldsUserErrors"] = Field(alias="userErrors")


class StockChangeFieldsMovements(MovementFields):
    pass


class StockChangeFieldsLevels(StockLevelFields):
    pass


class StockChangeFieldsUserErrors(UserErrorFields):
    pass


ItemFields.model_rebuild()
LocationFields.model_rebuild()
MovementFields.model_rebuild()
PageInfoFields.model_rebuild()
StockLevelFields.model_rebuild()
UserErrorFields.model_rebuild()
StockChangeFields.model_rebuild()
