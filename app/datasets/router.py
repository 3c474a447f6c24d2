from typing import Annotated

import json

from fastapi import APIRouter, Query, Request, Response
from fastapi.exceptions import RequestValidationError
from starlette.concurrency import run_in_threadpool
from pydantic import ValidationError

from app.config import get_settings
from app.datasets import repository, service
from app.datasets.schemas import BuiltinList, DatasetInline, DatasetPage, DatasetRead
from app.deps import CurrentTenant, SessionDep
from app.errors import ApiError
from app.storage import get_store

router = APIRouter(prefix="/v1/datasets", tags=["datasets"])

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


def _json_or_none(raw: bytes):
    try:
        return json.loads(raw)
    except ValueError:
        return None


async def _read_file(upload, limit: int) -> bytes:
    data = await upload.read(limit + 1)
    if len(data) > limit:
        raise ApiError(413, f"the file is over the upload limit of {limit:,} bytes", "file")
    return data


@router.post("", status_code=201, response_model=DatasetRead, openapi_extra=UPLOAD_DOC)
async def upload_dataset(request: Request, db: SessionDep, tenant: CurrentTenant):
    """Uploads a dataset: a multipart .csv/.npz file, or a JSON body with inline x and y."""
    settings = get_settings()
    content_type = request.headers.get("content-type", "")
    if content_type.startswith("application/json"):
        raw = await request.body()
        try:
            body = DatasetInline.model_validate_json(raw)
        except ValidationError as exc:
            raise RequestValidationError(exc.errors(), body=_json_or_none(raw))
        parsed = await run_in_threadpool(service.parse_json, x=body.x, y=body.y,
                                        max_rows=settings.max_inline_rows)
        name, fmt = body.name, "json"
    elif content_type.startswith("multipart/form-data"):
        # Refuse an oversized upload before spooling it, when the client says its size.
        declared = request.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > settings.max_upload_bytes + 64 * 1024:
            raise ApiError(413, f"the upload is over the limit of {settings.max_upload_bytes:,} bytes",
                           "file")
        form = await request.form()
        upload = form.get("file")
        if upload is None or isinstance(upload, str):
            raise ApiError(422, "attach the dataset as the multipart field 'file'", "file")
        data = await _read_file(upload, settings.max_upload_bytes)
        targets = [t.strip() for v in form.getlist("target") for t in str(v).split(",") if t.strip()]
        parsed, fmt = await run_in_threadpool(service.parse_upload, filename=upload.filename or "",
                                             data=data, targets=targets)
        name = str(form.get("name") or upload.filename or "dataset")
    else:
        raise ApiError(415, "send multipart/form-data with a 'file' field, or application/json "
                            "with 'x' and 'y'", "Content-Type")
    row = await run_in_threadpool(service.create, db_session=db, store=get_store(), tenant_id=tenant,
                                  name=name, source_format=fmt, parsed=parsed)
    db.commit()
    return row


@router.get("", response_model=DatasetPage)
def list_datasets(db: SessionDep, tenant: CurrentTenant,
                  limit: Annotated[int, Query(ge=1, le=500)] = 50,
                  offset: Annotated[int, Query(ge=0)] = 0):
    rows, total = repository.list_page(db_session=db, tenant_id=tenant, limit=limit, offset=offset)
    return DatasetPage(items=rows, total=total, limit=limit, offset=offset)


# Declared before /{dataset_id}, which would otherwise take "builtin" for an id.
@router.get("/builtin", response_model=BuiltinList)
def list_builtin_datasets(tenant: CurrentTenant):
    """The builtin datasets a job's `dataset` field can name, with parameters and shapes."""
    return BuiltinList(items=service.builtin_catalog())


def get_or_404(db, tenant: str, dataset_id: str):
    row = repository.get(db_session=db, tenant_id=tenant, dataset_id=dataset_id)
    if row is None:
        raise ApiError(404, f"no dataset {dataset_id!r}")
    return row


@router.get("/{dataset_id}", response_model=DatasetRead)
def get_dataset(dataset_id: str, db: SessionDep, tenant: CurrentTenant):
    return get_or_404(db, tenant, dataset_id)


@router.delete("/{dataset_id}", status_code=204)
def delete_dataset(dataset_id: str, db: SessionDep, tenant: CurrentTenant):
    row = get_or_404(db, tenant, dataset_id)
    key = service.delete(db_session=db, dataset=row)
    db.commit()
    if key:
        get_store().delete(key)
    return Response(status_code=204)
