"""/v1/keys: a tenant lists, adds and revokes its own API keys."""
from typing import Annotated

from fastapi import APIRouter, Query, Response

from app.auth import service
from app.auth.schemas import KeyCreate, KeyCreated, KeyPage, KeyRead
from app.db import SQL_BIGINT_MAX
from app.deps import CurrentTenant, SessionDep
from app.openapi import errors

router = APIRouter(prefix="/v1/keys", tags=["keys"])


@router.get("", response_model=KeyPage)
def list_keys(db: SessionDep, tenant: CurrentTenant,
              limit: Annotated[int, Query(ge=1, le=500)] = 50,
              offset: Annotated[int, Query(ge=0, le=SQL_BIGINT_MAX)] = 0):
    """The tenant's keys, newest first, revoked and expired ones included; never a key's secret."""
    rows, total = service.list_page(db_session=db, tenant_id=tenant, limit=limit, offset=offset)
    return KeyPage(items=rows, total=total, limit=limit, offset=offset)


@router.post("", status_code=201, response_model=KeyCreated)
def create_key(tenant: CurrentTenant, request: KeyCreate, db: SessionDep):
    """Another key for the caller's tenant; the key is in this answer only (only its digest is stored)."""
    created = service.create_for_tenant(db_session=db, tenant_id=tenant, name=request.name,
                                        expires_at=request.expires_at)
    return KeyCreated(**KeyRead.model_validate(created.row).model_dump(exclude={"status"}), key=created.key)


@router.delete("/{key_id}", status_code=204, responses=errors(404))
def revoke_key(key_id: str, db: SessionDep, tenant: CurrentTenant):
    """Revokes one of the tenant's keys, the one making this call included; at once in this
    process, within AUTH_CACHE_SECONDS in others. Revoking a revoked key is a 204 that changes nothing."""
    service.revoke(db_session=db, key_id=key_id, tenant_id=tenant)
    return Response(status_code=204)
