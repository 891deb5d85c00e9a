from typing import Optional

from pydantic import Field

from .base_model import BaseModel
from .fragments import LocationFields, UserErrorFields


class UpdateLocation(BaseModel):
    update_location: "UpdateLocationUpdateLocation" = Field(alias="updateLocation")


class UpdateLocationUpdateLocation(BaseModel):
    location: Optional["UpdateLocationUpdateLocationLocation"]
    user_errors: list["UpdateLocationUpdateLocationUserErrors"] = Field(
        alias="userErrors"
    )


UpdateLocationUpdateLocationLocation = LocationFields
UpdateLocationUpdateLocationUserErrors = UserErrorFields
UpdateLocation.model_rebuild()
UpdateLocationUpdateLocation.model_rebuild()
