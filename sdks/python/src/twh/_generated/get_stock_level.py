from typing import Optional

from pydantic import Field

from .base_model import BaseModel
from .fragments import StockLevelFields


class GetStockLevel(BaseModel):
    stock_level: Optional["GetStockLevelStockLevel"] = Field(alias="stockLevel")


GetStockLevelStockLevel = StockLevelFields
GetStockLevel.model_rebuild()
