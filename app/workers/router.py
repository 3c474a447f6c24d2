from datetime import timedelta

from fastapi import APIRouter
from sqlalchemy import select

from app.config import get_settings
from app.deps import CurrentTenant, SessionDep
from app.jobs.lifecycle import JobStatus
from app.models import Job
from app.models.base import utcnow
from app.workers import repository
from app.workers.schemas import WorkerList, WorkerRead

router = APIRouter(prefix="/v1/workers", tags=["workers"])


@router.get("", response_model=WorkerList)
def list_workers(db: SessionDep, tenant: CurrentTenant, include_offline: bool = False):
    """The workers online now (with include_offline, also those seen in the last 7 days)."""
    offline_seconds = get_settings().worker_offline_seconds
    rows = repository.listing(db_session=db, offline_seconds=offline_seconds,
                              include_offline=include_offline)
    job_ids = [w.current_job_id for w in rows if w.current_job_id]
    # A current job counts only while it runs: a killed training process cannot clear it.
    running = dict(db.execute(select(Job.id, Job.tenant_id).where(
        Job.id.in_(job_ids), Job.status == JobStatus.RUNNING)).all()) if job_ids else {}
    cutoff = utcnow() - timedelta(seconds=offline_seconds)
    items = []
    for w in rows:
        status = w.status if w.status == "stopped" or w.heartbeat_at >= cutoff else "offline"
        job = w.current_job_id if w.current_job_id in running and status != "stopped" else None
        items.append(WorkerRead(
            name=w.name, host=w.host, kind=w.kind, device_index=w.device_index,
            device_name=w.device_name, memory_bytes=w.memory_bytes, queue=w.queue, status=status,
            busy=job is not None, running_job_id=job if job and running[job] == tenant else None,
            started_at=w.started_at, last_heartbeat_at=w.heartbeat_at))
    online = {kind: sum(1 for i in items if i.kind == kind and i.status == "online")
              for kind in ("gpu", "cpu")}
    return WorkerList(items=items, online=online)
