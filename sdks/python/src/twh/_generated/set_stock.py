from pydantic import Field

from .base_model import BaseModel
from .fragments import StockChangeFields


class SetStock(BaseModel):
    set_stock: "SetStockSetStock" = Field(alias="setStock")


SetStockSetStock = StockChangeFields
SetStock.model_rebuild()
