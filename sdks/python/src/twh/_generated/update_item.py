from typing import Optional

from pydantic import Field

from .base_model import BaseModel
from .fragments import ItemFields, UserErrorFields


class UpdateItem(BaseModel):
    update_item: "UpdateItemUpdateItem" = Field(alias="updateItem")


class UpdateItemUpdateItem(BaseModel):
    item: Optional["UpdateItemUpdateItemItem"]
    user_errors: list["UpdateItemUpdateItemUserErrors"] = Field(alias="userErrors")


UpdateItemUpdateItemItem = ItemFields
UpdateItemUpdateItemUserErrors = UserErrorFields
UpdateItem.model_rebuild()
UpdateItemUpdateItem.model_rebuild()
