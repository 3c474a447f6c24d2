from pydantic import BaseModel, ConfigDict


class StrictModel(BaseModel):
    """Forbids unknown fields: a typo is an error naming the field, not an ignored option."""

    model_config = ConfigDict(extra="forbid")
