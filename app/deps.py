"""Annotated dependencies the routes share."""
from typing import Annotated

from fastapi import Depends, Header
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from app.auth.service import remembered_tenant, tenant_for_key
from app.db import get_db, get_session_factory
from app.errors import ApiError

SessionDep = Annotated[Session, Depends(get_db)]


class Unauthorized(ApiError):
    def __init__(self, message: str):
        super().__init__(401, message, "Authorization", headers={"WWW-Authenticate": "Bearer"})


def bearer_key(authorization: str | None) -> str:
    """The API key of an 'Authorization: Bearer <key>' header."""
    if not authorization:
        raise Unauthorized("missing Authorization header; send 'Authorization: Bearer <api key>'")
    scheme, _, key = authorization.partition(" ")
    if scheme.lower() != "bearer" or not key.strip():
        raise Unauthorized("the Authorization header must be 'Bearer <api key>'")
    return key.strip()


def current_tenant(db: SessionDep, authorization: Annotated[str | None, Header()] = None) -> str:
    """Returns the tenant id of the request's Bearer key."""
    tenant = tenant_for_key(db_session=db, key=bearer_key(authorization))
    if tenant is None:
        raise Unauthorized("unknown or revoked API key")
    return tenant


CurrentTenant = Annotated[str, Depends(current_tenant)]


async def request_tenant(authorization: Annotated[str | None, Header()] = None) -> str:
    """current_tenant for async routes: from this process's memory on the event loop,
    else one short lookup in the thread pool (no session held for the route)."""
    key = bearer_key(authorization)
    tenant = remembered_tenant(key) or await run_in_threadpool(_look_up, key)
    if tenant is None:
        raise Unauthorized("unknown or revoked API key")
    return tenant


def _look_up(key: str) -> str | None:
    with get_session_factory()() as db:
        return tenant_for_key(db_session=db, key=key)


RequestTenant = Annotated[str, Depends(request_tenant)]
