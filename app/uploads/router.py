"""/v1/uploads: a large file sent in parts that a dropped connection does not lose (S3-style multipart):
open, put parts (any order, any API replica), read which are there, complete into a dataset, abort."""
from typing import Annotated

from fastapi import APIRouter, Path, Request, Response
from starlette.concurrency import run_in_threadpool

from app.datasets.schemas import DatasetRead
from app.db import session_scope
from app.deps import CurrentTenant, SessionDep
from app.openapi import errors
from app.storage import get_store
from app.uploads import parts, service
from app.uploads.schemas import PartRead, UploadComplete, UploadCreate, UploadRead

router = APIRouter(prefix="/v1/uploads", tags=["uploads"])
PART_DOC = {
    "requestBody": {"required": True, "content": {"application/octet-stream": {"schema": {
        "type": "string", "format": "binary",
        "description": "the part's bytes: part_size of them, the last part what is left"}}}},
    "parameters": [
        {"name": "x-trainyard-sha256", "in": "header", "required": False, "schema": {"type": "string"},
         "description": "the part's SHA-256 (hex); a part whose bytes do not match is refused (422)"},
        {"name": "Content-MD5", "in": "header", "required": False, "schema": {"type": "string"},
         "description": "the part's MD5 (base64, RFC 1864), checked the same way"}],
}
PartNumber = Annotated[int, Path(ge=1, le=parts.MAX_PARTS, description="the part's number, from 1")]


@router.post("", status_code=201, response_model=UploadRead,
             responses=errors(413, why={413: "size is over MAX_UPLOAD_BYTES, or would take the tenant over "
                                             "its stored-bytes quota"}))
def create_upload(body: UploadCreate, tenant: CurrentTenant, db: SessionDep):
    """Opens an upload of `size` bytes: the answer says the part size and how many parts to send."""
    row = service.create(db_session=db, tenant_id=tenant, body=body)
    return service.describe(row, [])


@router.get("/{upload_id}", response_model=UploadRead, responses=errors(404))
def get_upload(upload_id: str, tenant: CurrentTenant, db: SessionDep):
    """Which parts are there and which are missing: a client resumes from the missing ones."""
    return service.read(db_session=db, tenant_id=tenant, upload_id=upload_id)


# async: the body is read as it arrives (request.stream()), never held whole; the database and
# the store are reached in threads. The first check has a unit of work of its own, so the
# request's session holds no connection while a slow client sends the part.
@router.put("/{upload_id}/parts/{n}", response_model=PartRead, openapi_extra=PART_DOC,
            responses=errors(400, 404, 409, 422, why={409: "a complete is working on the upload"}))
async def put_part(upload_id: str, n: PartNumber, request: Request, tenant: CurrentTenant, db: SessionDep):
    """Sends part `n` (raw bytes); sending a part again replaces it."""
    wanted = parts.checksums_of(request.headers)
    expected = await run_in_threadpool(_expected_size, tenant, upload_id, n)
    parts.check_declared_length(request.headers, n=n, expected=expected)
    received = await parts.receive(request, n=n, expected=expected, md5=wanted.md5 is not None)
    try:
        parts.verify(received, wanted, n=n)
        row = await run_in_threadpool(lambda: service.record_part(
            db_session=db, store=get_store(), tenant_id=tenant, upload_id=upload_id, n=n, received=received))
        return PartRead.model_validate(row)
    finally:
        received.path.unlink(missing_ok=True)


def _expected_size(tenant: str, upload_id: str, n: int) -> int:
    with session_scope() as db:
        return service.expected_part_size(db_session=db, tenant_id=tenant, upload_id=upload_id, n=n)


@router.post("/{upload_id}/complete", status_code=201, response_model=DatasetRead,
             responses=errors(404, 409, 413, 422, why={409: "parts are missing (listed), or another complete "
                                                            "is working on the upload"}))
def complete_upload(upload_id: str, tenant: CurrentTenant, body: UploadComplete | None = None):
    """Assembles the parts into the file and ingests it: the dataset, as POST /v1/datasets answers.

    Three units of work: the claim (committed, so no lock is held while the file is parsed), the
    ingest, and on any failure the release, which leaves the upload and its parts as they were."""
    with session_scope() as db:
        done = service.claim_completion(db_session=db, tenant_id=tenant, upload_id=upload_id)
    if done is not None:  # completed before: the same dataset again
        return DatasetRead.model_validate(done)
    try:
        with session_scope() as db:
            dataset = service.complete(db_session=db, store=get_store(), tenant_id=tenant, upload_id=upload_id,
                                       body=body)
    except BaseException:
        with session_scope() as db:
            service.release_completion(db_session=db, upload_id=upload_id)
        raise
    return DatasetRead.model_validate(dataset)


@router.delete("/{upload_id}", status_code=204, responses=errors(404, 409))
def abort_upload(upload_id: str, tenant: CurrentTenant, db: SessionDep):
    """Abandons the upload: it and its parts are removed."""
    service.abort(db_session=db, store=get_store(), tenant_id=tenant, upload_id=upload_id)
    return Response(status_code=204)
