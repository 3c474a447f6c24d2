"""A running job's own worker's writes: lease, device, metric points, checkpoints, rewinds. No status changes.

Each is guarded by lifecycle.owned (the job is running and still this worker's), so a
worker that lost its lease writes nothing into the next attempt's job. Functions take the
caller's session and never commit.
"""
from datetime import timedelta

from sqlalchemy import delete, update
from sqlalchemy.orm import Session

from app.jobs import events
from app.jobs.lifecycle import owned
from app.models import Job, Metric
from app.models.base import utcnow


def renew_lease(*, db_session: Session, job_id: str, worker_id: str, lease_seconds: float) -> bool:
    """Extends the worker's lease on its job; False when the job is no longer its own."""
    result = db_session.execute(
        update(Job).where(owned(job_id, worker_id))
        .values(lease_expires_at=utcnow() + timedelta(seconds=lease_seconds))
        .execution_options(synchronize_session=False)
    )
    return result.rowcount == 1


def set_device(*, db_session: Session, job_id: str, worker_id: str, device: str) -> None:
    """Records the name of the device the job trains on."""
    db_session.execute(update(Job).where(owned(job_id, worker_id)).values(device=device)
                       .execution_options(synchronize_session=False))


def set_pack(*, db_session: Session, job_id: str, worker_id: str, pack_id: str | None,
             packed_with: int | None) -> None:
    """Records the pack the job trains in this attempt (None: it trains alone)."""
    db_session.execute(update(Job).where(owned(job_id, worker_id)).values(pack_id=pack_id, packed_with=packed_with)
                       .execution_options(synchronize_session=False))


def record_progress(*, db_session: Session, job_id: str, worker_id: str, points: list[dict],
                    epoch: int, step: int, latest: dict | None) -> bool | None:
    """Writes a batch of metric points, their events and the progress they reach.

    Returns whether a cancel was requested, or None, writing nothing, when the job is no
    longer this worker's running job: a worker that lost its lease must not add stale
    points to the next attempt's history.
    """
    # NaN/Inf (an exploding gradient norm while the loss is still finite) are not JSON:
    # PostgreSQL's json type refuses them, so they are stored as null.
    points, latest = events.clean(points), events.clean(latest)
    values = {"epoch": epoch, "step": step}
    if latest is not None:
        values["latest_metrics"] = latest
    owned_row = db_session.execute(
        update(Job).where(owned(job_id, worker_id))
        .values(**values).returning(Job.cancel_requested)
        .execution_options(synchronize_session=False)
    ).one_or_none()
    if owned_row is None:
        return None
    if points:
        db_session.add_all([
            Metric(job_id=job_id, kind=p["kind"], epoch=p["epoch"], step=p["step"],
                   values={k: v for k, v in p.items() if k not in ("kind", "epoch", "step")})
            for p in points
        ])
        events.append(db_session=db_session, job_id=job_id, events=events.metric_events(points))
    return bool(owned_row[0])


def mark_checkpoint(*, db_session: Session, job_id: str, worker_id: str, step: int) -> None:
    """Records the step of the checkpoint just stored, which a retry resumes from."""
    db_session.execute(update(Job).where(owned(job_id, worker_id))
                       .values(checkpoint_step=step).execution_options(synchronize_session=False))


def rewind(*, db_session: Session, job_id: str, worker_id: str, step: int, reason: str) -> bool:
    """Drops the points after ``step`` (training went back there) and says so in a ``rewind`` event.

    A stream consumer drops what it holds after ``step``; GET /metrics never shows the
    abandoned points.
    """
    return _rewind(db_session=db_session, job_id=job_id, worker_id=worker_id, values={"step": step},
                   step=step, reason=reason)


def resume_from(*, db_session: Session, job_id: str, worker_id: str, step: int | None) -> bool:
    """A new attempt starts from the checkpoint at ``step`` (None: from the first step):
    the lost attempt's points after it are dropped, and a ``rewind`` event says so."""
    if step:
        return _rewind(db_session=db_session, job_id=job_id, worker_id=worker_id, values={"step": step},
                       step=step, reason="resumed from the last checkpoint")
    return _rewind(db_session=db_session, job_id=job_id, worker_id=worker_id,
                   values={"step": 0, "epoch": 0, "latest_metrics": None}, step=0,
                   reason="no checkpoint yet: training restarts")


def _rewind(*, db_session: Session, job_id: str, worker_id: str, values: dict, step: int,
            reason: str) -> bool:
    """Sets the job's progress back, drops its points after ``step``, and records the rewind event."""
    mine = db_session.execute(
        update(Job).where(owned(job_id, worker_id)).values(**values).returning(Job.id)
        .execution_options(synchronize_session=False)
    ).scalar_one_or_none()
    if mine is None:
        return False
    db_session.execute(delete(Metric).where(Metric.job_id == job_id, Metric.step > step))
    events.append(db_session=db_session, job_id=job_id, events=[("rewind", {"step": step, "reason": reason})])
    return True
