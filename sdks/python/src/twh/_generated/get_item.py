from typing import Optional

from .base_model import BaseModel
from .fragments import ItemFields


class GetItem(BaseModel):
    item: Optional["GetItemItem"]


GetItemItem = ItemFields
GetItem.model_rebuild()
