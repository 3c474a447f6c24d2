"""Annotated dependencies every route takes: the request's session and its tenant."""
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPBearer
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from app.auth.service import ExpiredKey, remembered_tenant, tenant_for_key
from app.db import get_db, session_scope
from app.errors import ApiError
from app.ui import sessions
from app.ui.sessions import COOKIE, CSRF_HEADER, Current, csrf_matches

# scope="function": the unit of work commits when the route returns, before the response
# is sent, so a commit that fails answers 503 and a client never reads a 2xx for a change
# that was rolled back (the default scope, "request", would commit after sending).
SessionDep = Annotated[Session, Depends(get_db, scope="function")]


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


class BearerKey(HTTPBearer):
    """The Authorization header as sent; documented as the API's bearer scheme, so clients and
    test generators see it as authentication rather than as one more header parameter.

    FastAPI's own HTTPBearer would answer a malformed header itself; bearer_key() refuses it
    with the error body that names the header."""

    async def __call__(self, request: Request) -> str | None:
        return request.headers.get("authorization")


ApiKey = BearerKey(scheme_name="ApiKey", description="an API key from `trainyard keys create`",
                   auto_error=False)


class CsrfRequired(ApiError):
    def __init__(self):
        super().__init__(403, f"a request signed in by the dashboard's cookie must send the page's CSRF token "
                         f"in the {CSRF_HEADER} header", CSRF_HEADER)


SAFE_METHODS = ("GET", "HEAD", "OPTIONS")


async def current_tenant(request: Request, authorization: Annotated[str | None, Depends(ApiKey)]) -> str:
    """The tenant id of the request's Bearer key: from this process's memory on the event
    loop, else one short lookup in a thread, with a session of its own that holds no
    connection while the route waits for its thread. Without a Bearer key, the dashboard's
    session cookie (app/ui/sessions.py); a state-changing request must then carry its CSRF token."""
    if authorization is None and (token := request.cookies.get(COOKIE)):
        found = await run_in_threadpool(_session, token)
        if found is None:
            raise Unauthorized("the dashboard session has ended (signed out, expired, or its key revoked); "
                               "sign in again")
        if request.method not in SAFE_METHODS and not csrf_matches(request.headers.get(CSRF_HEADER), found.csrf_token):
            raise CsrfRequired()
        return found.tenant_id
    key = bearer_key(authorization)
    try:
        tenant = remembered_tenant(key) or await run_in_threadpool(_look_up, key)
    except ExpiredKey:
        raise Unauthorized("expired API key; create another (POST /v1/keys with a live key, "
                           "or `trainyard keys create`)") from None
    if tenant is None:
        raise Unauthorized("unknown or revoked API key")
    return tenant


def _session(token: str) -> Current | None:
    with session_scope() as db:
        return sessions.current(db_session=db, token=token)


def _look_up(key: str) -> str | None:
    with session_scope() as db:
        return tenant_for_key(db_session=db, key=key)


CurrentTenant = Annotated[str, Depends(current_tenant)]
