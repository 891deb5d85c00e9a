from pydantic import Field

from .base_model import BaseModel
from .fragments import ItemFields, PageInfoFields


class ListItems(BaseModel):
    items: "ListItemsItems"


class ListItemsItems(BaseModel):
    nodes: list["ListItemsItemsNodes"]
    page_info: "ListItemsItemsPageInfo" = Field(alias="pageInfo")


ListItemsItemsNodes = ItemFields
ListItemsItemsPageInfo = PageInfoFields
ListItems.model_rebuild()
ListItemsItems.model_rebuild()
