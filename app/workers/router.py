"""/v1/workers: the training workers and what they are doing."""
from fastapi import APIRouter

from app.config import get_settings
from app.deps import CurrentTenant, SessionDep
from app.workers import service
from app.workers.schemas import WorkerList

router = APIRouter(prefix="/v1/workers", tags=["workers"])


@router.get("", response_model=WorkerList)
def list_workers(db: SessionDep, tenant: CurrentTenant, include_offline: bool = False):
    """The workers online now (with include_offline, also those seen in the last 7 days)."""
    return service.listing(db_session=db, tenant_id=tenant, include_offline=include_offline,
                           offline_seconds=get_settings().worker_offline_seconds)
