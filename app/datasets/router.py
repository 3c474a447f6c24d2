"""/v1/datasets: upload, list, read, delete, and the builtin catalogue."""
from typing import Annotated

from fastapi import APIRouter, Query, Response

from app.config import get_settings
from app.datasets import repository, service
from app.datasets.schemas import BuiltinList, DatasetPage, DatasetRead
from app.datasets.upload import UPLOAD_DOC, UploadBody
from app.db import SQL_BIGINT_MAX
from app.deps import CurrentTenant, SessionDep
from app.openapi import errors
from app.storage import get_store

router = APIRouter(prefix="/v1/datasets", tags=["datasets"])


# The tenant before the upload: a request without a valid key is refused before its body is read.
@router.post("", status_code=201, response_model=DatasetRead, openapi_extra=UPLOAD_DOC,
             responses=errors(400, 413, 415, 422, why={413: "the file is over MAX_UPLOAD_BYTES, "
                                                           "or inline x over MAX_INLINE_ROWS rows"}))
def upload_dataset(tenant: CurrentTenant, upload: UploadBody, db: SessionDep):
    """Uploads a dataset: a multipart .csv/.npz file, or a JSON body with inline x and y."""
    return service.upload(db_session=db, store=get_store(), tenant_id=tenant, upload=upload,
                          max_inline_rows=get_settings().max_inline_rows)


@router.get("", response_model=DatasetPage)
def list_datasets(db: SessionDep, tenant: CurrentTenant,
                  limit: Annotated[int, Query(ge=1, le=500)] = 50,
                  offset: Annotated[int, Query(ge=0, le=SQL_BIGINT_MAX)] = 0):
    rows, total = repository.list_page(db_session=db, tenant_id=tenant, limit=limit, offset=offset)
    return DatasetPage(items=rows, total=total, limit=limit, offset=offset)


# Declared before /{dataset_id}, which would otherwise take "builtin" for an id.
@router.get("/builtin", response_model=BuiltinList)
def list_builtin_datasets(tenant: CurrentTenant):
    """The builtin datasets a job's `dataset` field can name, with parameters and shapes."""
    return BuiltinList(items=service.builtin_catalog())


@router.get("/{dataset_id}", response_model=DatasetRead, responses=errors(404))
def get_dataset(dataset_id: str, db: SessionDep, tenant: CurrentTenant):
    return service.get_or_404(db_session=db, tenant_id=tenant, dataset_id=dataset_id)


@router.delete("/{dataset_id}", status_code=204,
               responses=errors(404, why={409: "a queued or running job uses the dataset"}))
def delete_dataset(dataset_id: str, db: SessionDep, tenant: CurrentTenant):
    row = service.get_or_404(db_session=db, tenant_id=tenant, dataset_id=dataset_id)
    service.delete(db_session=db, store=get_store(), dataset=row)
    return Response(status_code=204)
