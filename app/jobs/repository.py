"""Job and metric queries; they write nothing (status moves: app/jobs/lifecycle.py; a worker's
progress: app/jobs/progress.py; message bookkeeping: app/jobs/sending.py)."""
from datetime import datetime

from sqlalchemy import Row, bindparam, func, literal_column, select
from sqlalchemy.orm import Session

from app.jobs.lifecycle import WAITING, JobStatus
from app.labels import conditions
from app.models import Job, JobEvent, Metric


def get(*, db_session: Session, tenant_id: str, job_id: str) -> Job | None:
    return db_session.scalar(select(Job).where(Job.id == job_id, Job.tenant_id == tenant_id))


# GET /v1/jobs/{id}, the route clients poll: the columns it shows and the job's status
# events (its attempt history), one row per event, in one round trip. Built once: building
# a statement costs more than running it. 'status' is a literal so that PostgreSQL's plan,
# prepared after a few runs, still matches the partial index ix_job_events_status.
_COLUMNS = (Job.id, Job.name, Job.labels, Job.status, Job.dataset_id, Job.parameter_count, Job.epoch,
            Job.spec["training"]["epochs"].as_integer().label("epochs"), Job.step, Job.total_steps,
            Job.latest_metrics, Job.device, Job.attempts, Job.error, Job.cancel_requested,
            Job.checkpoint_step, Job.study_id, Job.variant, Job.pack_id, Job.packed_with, Job.queue, Job.enqueued_at, Job.created_at, Job.started_at, Job.finished_at,
            JobEvent.data.label("event"), JobEvent.created_at.label("event_at"))
_STATUS_EVENTS = (JobEvent.job_id == Job.id) & (JobEvent.kind == literal_column("'status'"))
# By job id, whose primary key finds the rows, for one job or many at once (the polls that
# arrive together share a query: app/jobs/reads.py); each row says whose job it is.
_READ = (
    select(Job.tenant_id, *_COLUMNS)
    .outerjoin(JobEvent, _STATUS_EVENTS)
    .where(Job.id.in_(bindparam("job_ids", expanding=True)))
    .order_by(Job.id, JobEvent.seq)
)


def read_with_status_events(*, db_session: Session, keys: list[tuple[str, str]]) -> dict[tuple[str, str], list[Row]]:
    """The jobs as GET /v1/jobs/{id} shows them, by (tenant id, job id): each found job's rows,
    one per status event (one row with ``event`` None when it has none). Another tenant's job
    is not found."""
    wanted, found = set(keys), {}
    for row in db_session.execute(_READ, {"job_ids": [job_id for _, job_id in keys]}):
        if (row.tenant_id, row.id) in wanted:
            found.setdefault((row.tenant_id, row.id), []).append(row)
    return found


def get_by_idempotency_key(*, db_session: Session, tenant_id: str, key: str) -> Job | None:
    return db_session.scalar(
        select(Job).where(Job.tenant_id == tenant_id, Job.idempotency_key == key)
    )


def list_page(*, db_session: Session, tenant_id: str, status: JobStatus | None, limit: int,
              offset: int, study_id: str | None = None, labels: dict[str, str | None] | None = None,
              name: str | None = None, name_prefix: str | None = None) -> tuple[list[Job], int]:
    where = [Job.tenant_id == tenant_id, *conditions(labels_column=Job.labels, name_column=Job.name,
                                                     labels=labels or {}, name=name, name_prefix=name_prefix)]
    if status:
        where.append(Job.status == status)
    if study_id:
        where.append(Job.study_id == study_id)
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


def metric_rows(*, db_session: Session, job_id: str, after_step: int) -> list:
    """The whole history after ``after_step`` as plain rows (kind, epoch, step, values): about
    half the time of reading the ORM objects for the tens of thousands a chart cuts down"""
    return list(db_session.execute(
        select(Metric.kind, Metric.epoch, Metric.step, Metric.values)
        .where(Metric.job_id == job_id, Metric.step > after_step).order_by(Metric.step, Metric.id)).all())


def queue_of(*, db_session: Session, job_id: str) -> str:
    """The queue the job waits on (gpu | cpu)."""
    return db_session.scalar(select(Job.queue).where(Job.id == job_id))


def tenant_of(*, db_session: Session, job_id: str) -> str | None:
    """The job's tenant id (for its log lines)."""
    return db_session.scalar(select(Job.tenant_id).where(Job.id == job_id))


def waiting_sent_before(*, db_session: Session, before: datetime) -> list[str]:
    """Waiting jobs whose message was last sent before ``before``, or never (the creation time counts)."""
    sent = func.coalesce(Job.enqueued_at, Job.created_at)
    return list(db_session.scalars(select(Job.id).where(Job.status.in_(WAITING), sent < before)).all())
