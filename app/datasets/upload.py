"""A dataset upload as the request carries it: a multipart file (streamed to disk) or a JSON body, size-checked, not yet parsed."""
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated

from anyio import to_thread
from fastapi import Depends, Request
from fastapi.exceptions import RequestValidationError
from pydantic import TypeAdapter, ValidationError
from app.datasets.spool import FILE_FIELD, spool
from app.datasets.schemas import DatasetInline, DatasetName
from app.errors import ApiError

_NAME = TypeAdapter(DatasetName)
UPLOAD_DOC = {
    "requestBody": {
        "content": {
            "multipart/form-data": {"schema": {
                "type": "object", "required": ["file"],
                "properties": {
                    "file": {"type": "string", "format": "binary",
                             "description": ".csv with a header row, .parquet, .arrow/.feather/.ipc "
                                            "(Arrow IPC), or .npz with arrays x and y"},
                    "target": {"type": "string",
                               "description": "CSV target column(s), comma-separated"},
                    "name": {"type": "string"},
                }}},
            "application/json": {"schema": DatasetInline.model_json_schema()},
        }
    }
}


@dataclass(frozen=True)
class Upload:
    """Either ``inline`` (a JSON body) or a file's name, its local copy and the target columns."""

    name: str
    inline: DatasetInline | None = None
    filename: str = ""
    path: Path | None = None  # the uploaded file, spooled under DATA_DIR; removed after the request
    targets: list[str] = field(default_factory=list)


async def read_upload(request: Request) -> AsyncIterator[Upload]:
    """Reads the body on the event loop (it arrives in pieces, counted by app/request_limits.py):
    a file to disk as it comes (app/datasets/spool.py), inline JSON parsed in a thread (32 MB
    took about a second); the file is parsed in the service's thread, and removed afterwards."""
    content_type = request.headers.get("content-type", "")
    if content_type.startswith("application/json"):
        yield await to_thread.run_sync(_inline, await request.body())
    elif content_type.startswith("multipart/form-data"):
        spooled = await spool(request)
        try:
            yield _from_form(spooled)
        finally:
            spooled.remove()
    else:
        raise ApiError(415, "send multipart/form-data with a 'file' field, or application/json "
                            "with 'x' and 'y'", "Content-Type")


def _inline(raw: bytes) -> Upload:
    try:
        body = DatasetInline.model_validate_json(raw)
    except ValidationError as exc:
        raise RequestValidationError(exc.errors(), body=_json_or_none(raw))
    return Upload(name=body.name, inline=body)


def _from_form(spooled) -> Upload:
    if spooled.path is None:
        raise ApiError(422, f"attach the dataset as the multipart field {FILE_FIELD!r}", "file")
    targets = [t.strip() for v in spooled.fields.get("target", []) for t in v.split(",") if t.strip()]
    names = spooled.fields.get("name")
    return Upload(name=_form_name(names[0] if names else None, spooled.filename),
                  filename=spooled.filename or "", path=spooled.path, targets=targets)


def _form_name(name, filename: str | None) -> str:
    """The form's ``name``, held to the JSON body's rules; without one, the file's name, cut to fit them."""
    if not name:
        return (filename or "").replace("\x00", "")[:200] or "dataset"
    try:
        return _NAME.validate_python(str(name))
    except ValidationError as exc:
        raise RequestValidationError([{**e, "loc": ("body", "name")} for e in exc.errors()])


def _json_or_none(raw: bytes):
    try:
        return json.loads(raw)
    except ValueError:  # its depth is bounded (app/request_limits.py): no RecursionError
        return None


UploadBody = Annotated[Upload, Depends(read_upload)]
