from pydantic import Field

from .base_model import BaseModel
from .fragments import StockChangeFields


class MoveStock(BaseModel):
    move_stock: "MoveStockMoveStock" = Field(alias="moveStock")


MoveStockMoveStock = StockChangeFields
MoveStock.model_rebuild()
