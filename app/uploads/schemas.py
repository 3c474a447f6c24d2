"""The upload routes' schemas: an upload to open, one as read (its parts and the missing ones), a part."""
from datetime import datetime
from pathlib import PurePath
from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from app.datasets.ingest import ACCEPTED, FORMATS
from app.datasets.schemas import DatasetName, _no_nul

Targets = str | list[Annotated[str, Field(max_length=200)]] | None


def _known_format(filename: str) -> str:
    """Refused at create, not after gigabytes of parts: the extension picks the parser."""
    if PurePath(filename.lower()).suffix not in FORMATS:
        raise ValueError(f"{filename!r}: upload a {ACCEPTED}")
    return filename


TARGET_DOC = "CSV target column(s): comma-separated, or a list (as POST /v1/datasets' form field 'target')"


class UploadCreate(BaseModel):
    """A file about to be sent in parts."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [
        {"filename": "sales.csv", "size": 5_368_709_120, "target": "churned", "name": "sales-2026"}]})
    filename: Annotated[str, Field(min_length=1, max_length=255), AfterValidator(_no_nul),
                        AfterValidator(_known_format)] = Field(
        description="the file's name; its extension picks the parser (.csv, .npz, ...), as an upload's does")
    size: int = Field(ge=1, description="the file's size in bytes, at most MAX_UPLOAD_BYTES")
    target: Targets = Field(default=None, description=TARGET_DOC)
    name: DatasetName | None = Field(default=None, description="the dataset's name (default: the filename)")


class UploadComplete(BaseModel):
    """Optional at complete: a target or name other than the ones given at create (a typo fixed
    without sending the file again)."""

    model_config = ConfigDict(extra="forbid")
    target: Targets = Field(default=None, description=TARGET_DOC)
    name: DatasetName | None = None


class PartRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    n: int = Field(description="the part's number, from 1")
    size: int
    sha256: str = Field(description="the SHA-256 of the part's bytes as the server received them")


class UploadRead(BaseModel):
    id: str
    filename: str
    name: str
    target: list[str]
    size: int
    part_size: int = Field(description="every part is this many bytes except the last, which holds the rest")
    parts_expected: int
    parts: list[PartRead] = Field(description="the parts received, by number")
    missing: list[int] = Field(description="the part numbers not received yet: a client resumes from these")
    received_bytes: int
    completing: bool = Field(description="a complete is assembling and ingesting the parts now")
    dataset_id: str | None = Field(description="once completed: the dataset it became (its parts are gone)")
    created_at: datetime
    expires_at: datetime = Field(description="when the upload is removed unless another part arrives first "
                                             "(each part moves it UPLOAD_EXPIRY_HOURS on)")


def targets_of(value: Targets) -> list[str]:
    """'a, b' or ["a", "b"] -> ["a", "b"], as POST /v1/datasets reads its form's target."""
    items = [value] if isinstance(value, str) else list(value or [])
    return [t.strip() for item in items for t in item.split(",") if t.strip()]
