"""The worker list as a tenant sees it: who is online, busy, and on which of its jobs."""
from datetime import timedelta

from sqlalchemy.orm import Session

from app.models.base import utcnow
from app.workers import repository
from app.workers.schemas import WorkerList, WorkerRead


def listing(*, db_session: Session, tenant_id: str, offline_seconds: float,
            include_offline: bool) -> WorkerList:
    """The workers online now (with include_offline, also those seen in the last 7 days)."""
    rows = repository.listing(db_session=db_session, offline_seconds=offline_seconds,
                              include_offline=include_offline)
    # A current job counts only while it runs: a killed training process cannot clear it.
    running = repository.running_job_tenants(
        db_session=db_session, job_ids=[w.current_job_id for w in rows if w.current_job_id])
    cutoff = utcnow() - timedelta(seconds=offline_seconds)
    items = []
    for w in rows:
        status = w.status if w.status == "stopped" or w.heartbeat_at >= cutoff else "offline"
        job = w.current_job_id if w.current_job_id in running and status != "stopped" else None
        items.append(WorkerRead(
            name=w.name, host=w.host, kind=w.kind, device_index=w.device_index, devices=w.devices,
            device_name=w.device_name, memory_bytes=w.memory_bytes, queue=w.queue, status=status,
            busy=job is not None, running_job_id=job if job and running[job] == tenant_id else None,
            started_at=w.started_at, last_heartbeat_at=w.heartbeat_at))
    online = {kind: sum(1 for i in items if i.kind == kind and i.status == "online")
              for kind in ("gpu", "cpu")}
    return WorkerList(items=items, online=online)
