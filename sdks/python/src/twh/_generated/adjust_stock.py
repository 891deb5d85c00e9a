from pydantic import Field

from .base_model import BaseModel
from .fragments import StockChangeFields


class AdjustStock(BaseModel):
    adjust_stock: "AdjustStockAdjustStock" = Field(alias="adjustStock")


AdjustStockAdjustStock = StockChangeFields
AdjustStock.model_rebuild()
