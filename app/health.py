"""/healthz and /readyz: is the process up, are its database and broker reachable."""
from typing import Literal

from fastapi import APIRouter
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from sqlalchemy import text
from sqlalchemy.orm import Session

from app.deps import SessionDep
from app.queue import broker_reachable

router = APIRouter(tags=["health"])


class Readiness(BaseModel):
    status: Literal["ok", "unavailable"]
    checks: dict[str, bool]


@router.get("/healthz")
async def healthz() -> dict:
    """The process is up."""
    return {"status": "ok"}


@router.get("/readyz", response_model=Readiness, responses={
    503: {"model": Readiness, "description": "the database or the broker is unreachable"}})
def readyz(db: SessionDep) -> JSONResponse:
    """The database and the broker are reachable."""
    checks = {"database": database_reachable(db_session=db), "broker": broker_reachable()}
    ok = all(checks.values())
    return JSONResponse({"status": "ok" if ok else "unavailable", "checks": checks},
                        status_code=200 if ok else 503)


def database_reachable(*, db_session: Session) -> bool:
    """Whether one round trip to the database succeeds."""
    try:
        db_session.execute(text("SELECT 1"))
        return True
    except Exception:
        db_session.rollback()  # so the request's unit of work ends cleanly
        return False
