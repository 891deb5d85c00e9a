from typing import Optional

from .base_model import BaseModel
from .fragments import LocationFields


class GetLocation(BaseModel):
    location: Optional["GetLocationLocation"]


GetLocationLocation = LocationFields
GetLocation.model_rebuild()
