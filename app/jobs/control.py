"""Changing a job's course: cancel, checkpoint bookkeeping, resuming after a lost worker."""
from sqlalchemy import delete, update
from sqlalchemy.orm import Session

from app.errors import ApiError
from app.jobs import events
from app.models import Job, Metric
from app.models.base import utcnow
from app.models.job import CLAIMABLE_STATUSES, TERMINAL_STATUSES


def cancel(*, db_session: Session, job: Job) -> Job:
    """A waiting job is cancelled at once; a running one is asked to stop at its next step.

    Each is one conditional UPDATE, so a cancel racing a claim or a finish changes the job
    at most once: whichever commits first wins, and the other sees no row to change.
    """
    if job.status in TERMINAL_STATUSES:
        raise ApiError(409, f"job is already {job.status}; only queued, retrying or running jobs "
                            "can be cancelled")
    now = utcnow()
    cancelled = db_session.execute(
        update(Job).where(Job.id == job.id, Job.status.in_(CLAIMABLE_STATUSES))
        .values(status="cancelled", finished_at=now, error="cancelled by request")
        .execution_options(synchronize_session=False)).rowcount
    if cancelled:
        events.append(db_session=db_session, job_id=job.id,
                      events=[events.status_event("cancelled", reason="cancelled by request")])
    else:
        requested = db_session.execute(
            update(Job).where(Job.id == job.id, Job.status == "running")
            .values(cancel_requested=True).execution_options(synchronize_session=False)).rowcount
        if not requested:  # it finished between our read and the update
            db_session.refresh(job)
            raise ApiError(409, f"job is already {job.status}")
    db_session.refresh(job)
    return job


def mark_checkpoint(*, db_session: Session, job_id: str, worker_id: str, step: int) -> None:
    db_session.execute(update(Job).where(Job.id == job_id, Job.worker_id == worker_id)
                       .values(checkpoint_step=step).execution_options(synchronize_session=False))


def resume_from(*, db_session: Session, job_id: str, step: int | None) -> None:
    """A new attempt starts from the checkpoint at ``step`` (None: from the first step):
    the lost attempt's points after it are dropped, and a ``rewind`` event says so."""
    after = step or 0
    db_session.execute(delete(Metric).where(Metric.job_id == job_id, Metric.step > after))
    values = {"step": after} if step else {"step": 0, "epoch": 0, "latest_metrics": None}
    db_session.execute(update(Job).where(Job.id == job_id).values(**values)
                       .execution_options(synchronize_session=False))
    events.append(db_session=db_session, job_id=job_id, events=[
        ("rewind", {"step": after, "reason": "resumed from the last checkpoint" if step
                    else "no checkpoint yet: training restarts"})])


def hand_back(*, db_session: Session, job_id: str, worker_id: str) -> bool:
    """A worker shutting down returns its running job to the queue, checkpoint written.

    The attempt is not counted: the job was not lost, its worker was stopped on purpose.
    """
    reason = f"worker {worker_id} shut down; handed back to resume from its checkpoint"
    result = db_session.execute(
        update(Job).where(Job.id == job_id, Job.worker_id == worker_id, Job.status == "running")
        .values(status="retrying", worker_id=None, lease_expires_at=None, attempts=Job.attempts - 1,
                error=reason, enqueued_at=utcnow())
        .execution_options(synchronize_session=False))
    if result.rowcount:
        events.append(db_session=db_session, job_id=job_id,
                      events=[events.status_event("retrying", reason=reason)])
    return bool(result.rowcount)
