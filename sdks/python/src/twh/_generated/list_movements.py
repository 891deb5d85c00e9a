from pydantic import Field

from .base_model import BaseModel
from .fragments import MovementFields, PageInfoFields


class ListMovements(BaseModel):
    movements: "ListMovementsMovements"


class ListMovementsMovements(BaseModel):
    nodes: list["ListMovementsMovementsNodes"]
    page_info: "ListMovementsMovementsPageInfo" = Field(alias="pageInfo")


ListMovementsMovementsNodes = MovementFields
ListMovementsMovementsPageInfo = PageInfoFields
ListMovements.model_rebuild()
ListMovementsMovements.model_rebuild()
