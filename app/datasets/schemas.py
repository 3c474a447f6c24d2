"""The dataset routes' schemas: the inline upload, a dataset as read, its pages, the builtin catalogue."""
from datetime import datetime
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict, Field


def _no_nul(name: str) -> str:
    if "\x00" in name:
        raise ValueError("must not contain a NUL character")
    return name


# A dataset's name, whichever way it was uploaded (a JSON field or a multipart form field):
# stored and listed, so bounded, and without a NUL, which PostgreSQL cannot store.
DatasetName = Annotated[str, Field(min_length=1, max_length=200), AfterValidator(_no_nul)]


class DatasetInline(BaseModel):
    """A small dataset sent as JSON arrays instead of a file."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [
        {"name": "xor", "x": [[0, 0], [0, 1], [1, 0], [1, 1]], "y": [0, 1, 1, 0]}]})
    name: DatasetName = "inline"
    x: list[Any] = Field(min_length=1)
    y: list[Any] = Field(min_length=1)


class DatasetRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: str
    name: str
    source_format: str
    # Of the data as stored, not of the uploaded file: a CSV and an NPZ of the same arrays are one
    # dataset (stored once), and the stored arrays are what a job trains on (docs/datasets.md).
    sha256: str = Field(description=(
        "The content address of the parsed arrays (x then y: dtype, shape and bytes), not the "
        "uploaded file's SHA-256: the same data gives the same sha256 whether sent as CSV, NPZ or JSON."))
    bytes: int = Field(description=(
        "The size of the stored arrays (x.npy and y.npy, float32 features), not of the uploaded file."))
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


class BuiltinRead(BaseModel):
    """A builtin dataset: its parameters (JSON Schema each: type, default, limits) and its shapes."""

    name: str
    task: str  # classification | regression
    description: str
    parameters: dict[str, dict[str, Any]]
    # The dataset at the default parameters; generated ones scale with n_samples and the like.
    defaults: dict[str, Any]
    rows: int
    feature_shape: list[int]
    target_shape: list[int]
    target_kind: str  # integer (class labels, int64) | float (float32); x is always float32
    num_classes: int | None


class BuiltinList(BaseModel):
    items: list[BuiltinRead]
