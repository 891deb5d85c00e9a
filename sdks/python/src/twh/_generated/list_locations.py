from pydantic import Field

from .base_model import BaseModel
from .fragments import LocationFields, PageInfoFields


class ListLocations(BaseModel):
    locations: "ListLocationsLocations"


class ListLocationsLocations(BaseModel):
    nodes: list["ListLocationsLocationsNodes"]
    page_info: "ListLocationsLocationsPageInfo" = Field(alias="pageInfo")


ListLocationsLocationsNodes = LocationFields
ListLocationsLocationsPageInfo = PageInfoFields
ListLocations.model_rebuild()
ListLocationsLocations.model_rebuild()
