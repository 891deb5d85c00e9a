from typing import Optional

from pydantic import Field

from .base_model import BaseModel
from .fragments import LocationFields, UserErrorFields


class CreateLocation(BaseModel):
    create_location: "CreateLocationCreateLocation" = Field(alias="createLocation")


class CreateLocationCreateLocation(BaseModel):
    location: Optional["CreateLocationCreateLocationLocation"]
    user_errors: list["CreateLocationCreateLocationUserErrors"] = Field(
        alias="userErrors"
    )


CreateLocationCreateLocationLocation = LocationFields
CreateLocationCreateLocationUserErrors = UserErrorFields
CreateLocation.model_rebuild()
CreateLocationCreateLocation.model_rebuild()
