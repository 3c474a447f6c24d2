from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class DatasetInline(BaseModel):
    """A small dataset sent as JSON arrays instead of a file."""

    model_config = ConfigDict(extra="forbid")
    name: str = Field(default="inline", min_length=1, max_length=200)
    x: list[Any] = Field(min_length=1)
    y: list[Any] = Field(min_length=1)


class DatasetRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: str
    name: str
    source_format: str
    sha256: str
    bytes: int
    rows: int
    feature_shape: list[int]
    target_shape: list[int]
    target_kind: str
    target_min: float
    target_max: float
    classes: list[Any] | None
    feature_names: list[str] | None
    target_names: list[str] | None
    created_at: datetime


class DatasetPage(BaseModel):
    items: list[DatasetRead]
    total: int
    limit: int
    offset: int
