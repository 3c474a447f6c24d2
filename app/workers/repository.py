"""Worker rows: written by the workers (registration, heartbeat, current job), read by the API."""
from datetime import timedelta

from sqlalchemy import delete, func, select, update
from sqlalchemy.orm import Session

from app.jobs.lifecycle import WAITING, JobStatus
from app.models import Job, Worker
from app.models.base import utcnow

# Rows of workers gone this long are deleted when another worker registers.
FORGET_AFTER = timedelta(days=7)


def register(*, db_session: Session, worker: Worker) -> None:
    """Inserts the worker's row (or revives it, for a restarted process of the same name)."""
    now = utcnow()
    db_session.execute(delete(Worker).where(Worker.heartbeat_at < now - FORGET_AFTER))
    worker.status, worker.started_at, worker.heartbeat_at, worker.current_job_id = "online", now, now, None
    db_session.merge(worker)


def heartbeat(*, db_session: Session, name: str, status: str = "online") -> bool:
    """False when the worker has no row (deleted while it was unreachable): register again."""
    return db_session.execute(update(Worker).where(Worker.name == name)
                              .values(heartbeat_at=utcnow(), status=status)).rowcount == 1


def stopped(*, db_session: Session, name: str) -> None:
    db_session.execute(update(Worker).where(Worker.name == name)
                       .values(status="stopped", current_job_id=None, heartbeat_at=utcnow()))


def set_current_job(*, db_session: Session, name: str, job_id: str | None) -> None:
    db_session.execute(update(Worker).where(Worker.name == name).values(current_job_id=job_id))


def _fresh(offline_seconds: float):
    return Worker.heartbeat_at >= utcnow() - timedelta(seconds=offline_seconds)


def _online(offline_seconds: float):
    """Taking jobs: heard from lately, and not shutting down."""
    return (Worker.status == "online") & _fresh(offline_seconds)


def online_count(*, db_session: Session, kind: str, offline_seconds: float, min_devices: int = 1) -> int:
    """Online workers of the kind that own at least ``min_devices`` devices."""
    return db_session.scalar(select(func.count()).select_from(Worker)
                             .where(Worker.kind == kind, Worker.devices >= min_devices,
                                    _online(offline_seconds))) or 0


def listing(*, db_session: Session, offline_seconds: float, include_offline: bool) -> list[Worker]:
    query = select(Worker).order_by(Worker.host, Worker.name)
    if not include_offline:
        query = query.where((Worker.status != "stopped") & _fresh(offline_seconds))
    return list(db_session.scalars(query).all())


def waiting_ahead(*, db_session: Session, job: Job) -> int:
    """Jobs of the same queue, waiting since before this one."""
    return db_session.scalar(select(func.count()).select_from(Job).where(
        Job.queue == job.queue, Job.status.in_(WAITING),
        Job.created_at < job.created_at)) or 0


def running_job_tenants(*, db_session: Session, job_ids: list[str]) -> dict[str, str]:
    """Job id -> tenant id, for those of ``job_ids`` that are running now."""
    if not job_ids:
        return {}
    return dict(db_session.execute(select(Job.id, Job.tenant_id).where(
        Job.id.in_(job_ids), Job.status == JobStatus.RUNNING)).all())
