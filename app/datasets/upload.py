"""A dataset upload as the request carries it: a multipart file or a JSON body, size-checked, not yet parsed."""
import json
from dataclasses import dataclass, field
from typing import Annotated

from anyio import to_thread
from fastapi import Depends, Request
from fastapi.exceptions import RequestValidationError
from pydantic import TypeAdapter, ValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException

from app.config import get_settings
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
                             "description": ".csv with a header row, or .npz with arrays x and y"},
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
    """Either ``inline`` (a JSON body) or a file's name, bytes and CSV target columns."""

    name: str
    inline: DatasetInline | None = None
    filename: str = ""
    data: bytes = b""
    targets: list[str] = field(default_factory=list)


async def read_upload(request: Request) -> Upload:
    """Reads the body on the event loop (it arrives in pieces, counted by app/request_limits.py);
    parses inline JSON in a thread (32 MB took about a second), files in the service's."""
    content_type = request.headers.get("content-type", "")
    if content_type.startswith("application/json"):
        return await to_thread.run_sync(_inline, await request.body())
    if content_type.startswith("multipart/form-data"):
        return await _multipart(request)
    raise ApiError(415, "send multipart/form-data with a 'file' field, or application/json "
                        "with 'x' and 'y'", "Content-Type")


def _inline(raw: bytes) -> Upload:
    try:
        body = DatasetInline.model_validate_json(raw)
    except ValidationError as exc:
        raise RequestValidationError(exc.errors(), body=_json_or_none(raw))
    return Upload(name=body.name, inline=body)


async def _multipart(request: Request) -> Upload:
    limit = get_settings().max_upload_bytes
    try:  # the body's bytes are counted as they arrive (app/request_limits.py)
        form = await request.form()
    except StarletteHTTPException as exc:  # starlette's multipart limits: a part over 1 MiB, 1,000 fields
        raise ApiError(400, f"the multipart body cannot be read: {exc.detail}", "body")
    upload = form.get("file")
    if upload is None or isinstance(upload, str):
        raise ApiError(422, "attach the dataset as the multipart field 'file'", "file")
    data = await upload.read(limit + 1)
    if len(data) > limit:
        raise ApiError(413, f"the file is over the upload limit of {limit:,} bytes", "file")
    targets = [t.strip() for v in form.getlist("target") for t in str(v).split(",") if t.strip()]
    return Upload(name=_form_name(form.get("name"), upload.filename),
                  filename=upload.filename or "", data=data, targets=targets)


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
