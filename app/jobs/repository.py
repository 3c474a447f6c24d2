"""Job and metric queries; they write nothing (status moves: app/jobs/lifecycle.py; a worker's
progress: app/jobs/progress.py; message bookkeeping: app/jobs/sending.py)."""
from datetime import datetime

from psycopg.rows import namedtuple_row
from psycopg_pool import AsyncConnectionPool
from sqlalchemy import ARRAY, Connection, Row, String, bindparam, func, literal_column, select
from sqlalchemy.dialects.postgresql.psycopg import dialect as psycopg_dialect
from sqlalchemy.orm import Session

from app.jobs.lifecycle import WAITING, JobStatus
from app.models import Job, JobEvent, Metric


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
# The same read for many (tenant, job) pairs at once, on PostgreSQL: the pairs come as two
# arrays unnested side by side, so the statement's text (and its prepared plan) is the same
# whatever their number. Each row says whose job it is.
_KEYS = select(func.unnest(bindparam("tenant_ids", type_=ARRAY(String))).label("tenant_id"),
               func.unnest(bindparam("job_ids", type_=ARRAY(String))).label("job_id")).subquery("keys")
_READ_MANY = (
    select(Job.tenant_id, *_COLUMNS)
    .select_from(_KEYS.join(Job, (Job.id == _KEYS.c.job_id) & (Job.tenant_id == _KEYS.c.tenant_id))
                 .outerjoin(JobEvent, _STATUS_EVENTS))
    .order_by(Job.id, JobEvent.seq)
)
# Elsewhere (SQLite) by job id alone, whose primary key finds the rows; the tenant is checked
# on each row.
_READ_BY_IDS = (
    select(Job.tenant_id, *_COLUMNS)
    .outerjoin(JobEvent, _STATUS_EVENTS)
    .where(Job.id.in_(bindparam("job_ids", expanding=True)))
    .order_by(Job.id, JobEvent.seq)
)
# _READ_MANY as psycopg runs it on the event loop; its constants (the JSON keys) are plain strings,
# so no SQLAlchemy bind processing is skipped.
_READ_MANY_PG = _READ_MANY.compile(dialect=psycopg_dialect())
_READ_MANY_SQL, _READ_MANY_PARAMS = str(_READ_MANY_PG), _READ_MANY_PG.params


def read_with_status_events(*, conn: Connection, tenant_id: str, job_id: str) -> list[Row]:
    """The job as GET /v1/jobs/{id} shows it, one row per status event (one row with
    ``event`` None when it has none); empty when the tenant has no such job."""
    return list(conn.execute(_READ, {"job_id": job_id, "tenant_id": tenant_id}))


def read_many(*, conn: Connection, keys: list[tuple[str, str]]) -> dict[tuple[str, str], list[Row]]:
    """read_with_status_events for many (tenant id, job id) pairs in one query: each found
    job's rows (with ``tenant_id`` first), by pair."""
    return _by_pair(conn.execute(_READ_BY_IDS, {"job_ids": [j for _, j in keys]}), keys)


async def read_many_async(*, pool: AsyncConnectionPool,
                          keys: list[tuple[str, str]]) -> dict[tuple[str, str], list[tuple]]:
    """read_with_status_events for many (tenant id, job id) pairs in one query, on PostgreSQL
    from the event loop: each found job's rows (named tuples, with ``tenant_id`` first), by pair."""
    params = {**_READ_MANY_PARAMS, "tenant_ids": [t for t, _ in keys], "job_ids": [j for _, j in keys]}
    async with pool.connection() as conn:
        cursor = conn.cursor(row_factory=namedtuple_row)
        await cursor.execute(_READ_MANY_SQL, params)
        return _by_pair(await cursor.fetchall(), keys)


def _by_pair(rows, keys: list[tuple[str, str]]) -> dict[tuple[str, str], list]:
    """The rows of each job asked for, by (tenant id, job id); rows of other pairs are dropped."""
    wanted = set(keys)
    found: dict[tuple[str, str], list] = {}
    for row in rows:
        if (row.tenant_id, row.id) in wanted:
            found.setdefault((row.tenant_id, row.id), []).append(row)
    return found


def get_by_idempotency_key(*, db_session: Session, tenant_id: str, key: str) -> Job | None:
    return db_session.scalar(
        select(Job).where(Job.tenant_id == tenant_id, Job.idempotency_key == key)
    )


def list_page(*, db_session: Session, tenant_id: str, status: JobStatus | None, limit: int,
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


def queue_of(*, db_session: Session, job_id: str) -> str:
    """The queue the job waits on (gpu | cpu)."""
    return db_session.scalar(select(Job.queue).where(Job.id == job_id))


def waiting_sent_before(*, db_session: Session, before: datetime) -> list[str]:
    """Waiting jobs whose message was last sent before ``before``, or never (the creation time counts)."""
    sent = func.coalesce(Job.enqueued_at, Job.created_at)
    return list(db_session.scalars(select(Job.id).where(Job.status.in_(WAITING), sent < before)).all())
