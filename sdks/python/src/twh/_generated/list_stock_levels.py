from pydantic import Field

from .base_model import BaseModel
from .fragments import PageInfoFields, StockLevelFields


class ListStockLevels(BaseModel):
    stock_levels: "ListStockLevelsStockLevels" = Field(alias="stockLevels")


class ListStockLevelsStockLevels(BaseModel):
    nodes: list["ListStockLevelsStockLevelsNodes"]
    page_info: "ListStockLevelsStockLevelsPageInfo" = Field(alias="pageInfo")


ListStockLevelsStockLevelsNodes = StockLevelFields
ListStockLevelsStockLevelsPageInfo = PageInfoFields
ListStockLevels.model_rebuild()
ListStockLevelsStockLevels.model_rebuild()
