from typing import Optional

from pydantic import Field

from .base_model import BaseModel
from .fragments import ItemFields, UserErrorFields


class CreateItem(BaseModel):
    create_item: "CreateItemCreateItem" = Field(alias="createItem")


class CreateItemCreateItem(BaseModel):
    item: Optional["CreateItemCreateItemItem"]
    user_errors: list["CreateItemCreateItemUserErrors"] = Field(alias="userErrors")


CreateItemCreateItemItem = ItemFields
CreateItemCreateItemUserErrors = UserErrorFields
CreateItem.model_rebuild()
CreateItemCreateItem.model_rebuild()
