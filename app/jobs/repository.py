"""Job and metric queries. The worker's claim, heartbeat and finish live here too."""
from datetime import datetime, timedelta

from sqlalchemy import Row, and_, bindparam, delete, func, literal_column, or_, select, update
from sqlalchemy.orm import Session

from app.jobs import events
from app.models import Job, JobEvent, Metric
from app.models.base import utcnow
from app.models.job import CLAIMABLE_STATUSES, UNSENT


def get(*, db_session: Session, tenant_id: str, job_id: str) -> Job | None:
    return db_session.scalar(select(Job).where(Job.id == job_id, Job.tenant_id == tenant_id))


# GET /v1/jobs/{id}, the route clients poll: the columns it shows and the job's status
# events (its attempt history), one row per event, in one round trip. Built once: building
# a statement costs more than running it. 'status' is a literal so that PostgreSQL's plan,
# prepared after a few runs, still matches the partial index ix_job_events_status.
_COLUMNS = (Job.id, Job.status, Job.dataset_id, Job.parameter_count, Job.epoch,
            Job.spec["training"]["epochs"].as_integer().label("epochs"), Job.step, Job.total_steps,
            Job.latest_metrics, Job.device, Job.attempts, Job.error, Job.cancel_requested,
            Job.checkpoint_step, Job.queue, Job.enqueued_at, Job.created_at, Job.started_at, Job.finished_at,
            JobEvent.data.label("event"), JobEvent.created_at.label("event_at"))
_STATUS_EVENTS = (JobEvent.job_id == Job.id) & (JobEvent.kind == literal_column("'status'"))
_READ = (
    select(*_COLUMNS)
    .outerjoin(JobEvent, _STATUS_EVENTS)
    .where(Job.id == bindparam("job_id"), Job.tenant_id == bindparam("tenant_id"))
    .order_by(JobEvent.seq)
)


def read_with_status_events(*, db_session: Session, tenant_id: str, job_id: str) -> list[Row]:
    """The job as GET /v1/jobs/{id} shows it, one row per status event (one row with
    ``event`` None when it has none); empty when the tenant has no such job."""
    return list(db_session.execute(_READ, {"job_id": job_id, "tenant_id": tenant_id}))


def get_by_idempotency_key(*, db_session: Session, tenant_id: str, key: str) -> Job | None:
    return db_session.scalar(
        select(Job).where(Job.tenant_id == tenant_id, Job.idempotency_key == key)
    )


def list_page(*, db_session: Session, tenant_id: str, status: str | None, limit: int,
              offset: int) -> tuple[list[Job], int]:
    where = [Job.tenant_id == tenant_id]
    if status:
        where.append(Job.status == status)
    total = db_session.scalar(select(func.count()).select_from(Job).where(*where)) or 0
    rows = db_session.scalars(
        select(Job).where(*where).order_by(Job.created_at.desc(), Job.id).limit(limit).offset(offset)
    ).all()
    return list(rows), total


def metrics_after(*, db_session: Session, job_id: str, after_step: int, limit: int) -> list[Metric]:
    return list(db_session.scalars(
        select(Metric).where(Metric.job_id == job_id, Metric.step > after_step)
        .order_by(Metric.step, Metric.id).limit(limit)
    ).all())


def claim(*, db_session: Session, job_id: str, worker_id: str, lease_seconds: float) -> int | None:
    """Atomically moves a queued or retrying job (or one whose lease went stale) to running.

    Returns the attempt number, or None when another delivery already holds the job:
    that delivery trains, this one does not.
    """
    now = utcnow()
    result = db_session.execute(
        update(Job)
        .where(Job.id == job_id, or_(
            Job.status.in_(CLAIMABLE_STATUSES),
            and_(Job.status == "running", Job.lease_expires_at < now),
        ))
        .values(status="running", attempts=Job.attempts + 1, worker_id=worker_id,
                lease_expires_at=now + timedelta(seconds=lease_seconds), started_at=now,
                error=None)
        .returning(Job.attempts)
        .execution_options(synchronize_session=False)
    )
    attempt = result.scalar_one_or_none()
    if attempt:
        events.append(db_session=db_session, job_id=job_id,
                      events=[events.status_event("running", attempt=attempt, worker=worker_id)])
    return attempt


def rewind(*, db_session: Session, job_id: str, worker_id: str, step: int, reason: str) -> bool:
    """Drops the points after ``step`` (training went back there) and says so in a ``rewind`` event.

    A stream consumer drops what it holds after ``step``; GET /metrics never shows the
    abandoned points.
    """
    owned = db_session.execute(
        update(Job).where(Job.id == job_id, Job.worker_id == worker_id, Job.status == "running")
        .values(step=step).returning(Job.id).execution_options(synchronize_session=False)
    ).scalar_one_or_none()
    if owned is None:
        return False
    db_session.execute(delete(Metric).where(Metric.job_id == job_id, Metric.step > step))
    events.append(db_session=db_session, job_id=job_id,
                  events=[("rewind", {"step": step, "reason": reason})])
    return True


def renew_lease(*, db_session: Session, job_id: str, worker_id: str, lease_seconds: float) -> bool:
    result = db_session.execute(
        update(Job).where(Job.id == job_id, Job.worker_id == worker_id, Job.status == "running")
        .values(lease_expires_at=utcnow() + timedelta(seconds=lease_seconds))
        .execution_options(synchronize_session=False)
    )
    return result.rowcount == 1


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
    owned = db_session.execute(
        update(Job).where(Job.id == job_id, Job.worker_id == worker_id, Job.status == "running")
        .values(**values).returning(Job.cancel_requested)
        .execution_options(synchronize_session=False)
    ).one_or_none()
    if owned is None:
        return None
    if points:
        db_session.add_all([
            Metric(job_id=job_id, kind=p["kind"], epoch=p["epoch"], step=p["step"],
                   values={k: v for k, v in p.items() if k not in ("kind", "epoch", "step")})
            for p in points
        ])
        events.append(db_session=db_session, job_id=job_id, events=events.metric_events(points))
    return bool(owned[0])


def finish(*, db_session: Session, job_id: str, worker_id: str, status: str,
           error: str | None = None, weights_path: str | None = None) -> bool:
    result = db_session.execute(
        update(Job).where(Job.id == job_id, Job.worker_id == worker_id, Job.status == "running")
        .values(status=status, error=error, weights_path=weights_path, finished_at=utcnow(),
                lease_expires_at=None)
        .execution_options(synchronize_session=False)
    )
    if result.rowcount != 1:
        return False
    events.append(db_session=db_session, job_id=job_id,
                  events=[events.status_event(status, error=error)])
    return True


def set_device(*, db_session: Session, job_id: str, device: str) -> None:
    db_session.execute(update(Job).where(Job.id == job_id).values(device=device)
                       .execution_options(synchronize_session=False))


def give_up_lost(*, db_session: Session, max_attempts: int) -> int:
    """Fails running jobs whose lease went stale after their last allowed attempt."""
    now = utcnow()
    lost = db_session.scalars(select(Job).where(
        Job.status == "running", Job.lease_expires_at < now, Job.attempts >= max_attempts)).all()
    for job in lost:
        error = (f"worker lost {job.attempts} times; last on {job.worker_id}. "
                 "The job may need more memory than a worker has; try a smaller "
                 "batch_size or model.")
        result = db_session.execute(
            update(Job).where(Job.id == job.id, Job.status == "running", Job.lease_expires_at < now)
            .values(status="failed", finished_at=now, lease_expires_at=None, error=error)
            .execution_options(synchronize_session=False))
        if result.rowcount == 1:
            events.append(db_session=db_session, job_id=job.id,
                          events=[events.status_event("failed", error=error)])
    return len(lost)


def requeue_lost(*, db_session: Session, max_attempts: int) -> list[str]:
    """Moves running jobs whose lease went stale to retrying; returns their ids.

    Moving them out of running (rather than leaving them there) means each lost job is
    re-enqueued once, not on every sweep until a worker is free.
    """
    now = utcnow()
    lost = db_session.scalars(select(Job).where(
        Job.status == "running", Job.lease_expires_at < now, Job.attempts < max_attempts)).all()
    requeued = []
    for job in lost:
        reason = f"worker {job.worker_id} was lost during attempt {job.attempts}; retrying"
        result = db_session.execute(
            update(Job).where(Job.id == job.id, Job.status == "running", Job.lease_expires_at < now)
            .values(status="retrying", worker_id=None, lease_expires_at=None, error=reason,
                    enqueued_at=now)
            .execution_options(synchronize_session=False))
        if result.rowcount == 1:
            events.append(db_session=db_session, job_id=job.id, events=[
                events.status_event("retrying", attempt=job.attempts, reason=reason)])
            requeued.append(job.id)
    return requeued


def mark_unsent(*, db_session: Session, job_ids: list[str]) -> None:
    """Waiting jobs whose message the broker did not take: the next sweep sends them again."""
    db_session.execute(update(Job).where(Job.id.in_(job_ids), Job.status.in_(CLAIMABLE_STATUSES))
                       .values(enqueued_at=UNSENT).execution_options(synchronize_session=False))


def resend_due(*, db_session: Session, before: datetime) -> list[str]:
    """Waiting jobs whose message was last sent before ``before``, or never; marks them sent now.

    The broker may have lost the message (a Redis restart without persistence, a lost
    filesystem spool): sending again is safe because only one delivery wins the claim. An
    unsent job stays marked unsent (and says so to its owner) until mark_sent, once its
    message is published.
    """
    sent = func.coalesce(Job.enqueued_at, Job.created_at)
    ids = list(db_session.scalars(
        select(Job.id).where(Job.status.in_(CLAIMABLE_STATUSES), sent < before)).all())
    if ids:
        db_session.execute(update(Job).where(Job.id.in_(ids), sent != UNSENT).values(enqueued_at=utcnow())
                           .execution_options(synchronize_session=False))
    return ids


def mark_sent(*, db_session: Session, job_ids: list[str]) -> None:
    """Unsent jobs among these were published now."""
    db_session.execute(update(Job).where(Job.id.in_(job_ids), Job.enqueued_at == UNSENT)
                       .values(enqueued_at=utcnow()).execution_options(synchronize_session=False))
