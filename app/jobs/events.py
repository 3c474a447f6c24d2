"""A job's event log (job_events): appended in the transaction that changes the job.

Why a per-job counter rather than an autoincrement id: on PostgreSQL a sequence hands
out ids at INSERT time, but transactions commit in any order, so a reader tailing
``id > last`` could see id 11 before id 10 commits and then skip 10 forever. Here the
next numbers come from ``UPDATE jobs SET last_event_id = last_event_id + n ...
RETURNING``, which holds the job row's lock until commit: a second writer to the same
job waits, then numbers after the first. Per job, seq order is commit order, which is
all a stream of one job needs (and SQLite serializes writers anyway).
"""
import math
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from app.models import Job, JobEvent
from app.models.base import utcnow
from app.studies import events as study_events
from app.webhooks import outbox

# PostgreSQL NOTIFY channel: the payload is the job id (see app/jobs/stream.py).
CHANNEL = "trainyard_job_events"


def clean(value: Any) -> Any:
    """NaN and Inf become None: they are not JSON, and PostgreSQL's json type refuses them."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: clean(v) for k, v in value.items()}
    if isinstance(value, list):
        return [clean(v) for v in value]
    return value


def append(*, db_session: Session, job_id: str, events: list[tuple[str, dict]]) -> int:
    """Appends (kind, data) events to the job's log; returns the last seq given.

    Call it in the same transaction as the change it describes, after that change's
    UPDATE of the job row (which already holds the row lock).
    """
    if not events:
        return 0
    last, study_id, variant, member, tenant_id = db_session.execute(
        update(Job).where(Job.id == job_id)
        .values(last_event_id=Job.last_event_id + len(events))
        .returning(Job.last_event_id, Job.study_id, Job.variant, Job.member, Job.tenant_id)
        .execution_options(synchronize_session=False)
    ).one()
    now = utcnow()
    first = last - len(events) + 1
    db_session.add_all([
        JobEvent(job_id=job_id, seq=first + i, kind=kind, data=clean(data), created_at=now)
        for i, (kind, data) in enumerate(events)
    ])
    db_session.flush()
    statuses = [clean(data) for kind, data in events if kind == "status"]
    if statuses:  # the webhooks' outbox rows, in this same transaction
        outbox.record_job_events(db_session=db_session, job_id=job_id, tenant_id=tenant_id, statuses=statuses)
    if study_id is not None:  # a study's member: its study's log records its status changes
        changes = [study_events.member_event(job_id=job_id, variant=variant, member=member, data=clean(data))
                   for kind, data in events if kind == "status"]
        study_events.append(db_session=db_session, study_id=study_id, events=changes)
    if db_session.get_bind().dialect.name == "postgresql":
        # Delivered at COMMIT, never for a rolled-back transaction: a listener that
        # hears it can already read the rows. Repeats within a transaction fold into one.
        db_session.execute(select(func.pg_notify(CHANNEL, job_id)))
    return last


def first(*, db_session: Session, job: Job, event: tuple[str, dict]) -> None:
    """Adds a new job's first event (seq 1) with the job's own INSERT.

    Not append(): no other transaction can see the job before this one commits, so there
    is no counter to lock, and no watcher to NOTIFY (a stream opened after the commit
    reads the stored event).
    """
    kind, data = event
    job.last_event_id = 1
    db_session.add(JobEvent(job_id=job.id, seq=1, kind=kind, data=clean(data), created_at=utcnow()))


def status_event(status: str, **details: Any) -> tuple[str, dict]:
    return "status", {"status": status, **{k: v for k, v in details.items() if v is not None}}


def metric_events(points: list[dict]) -> list[tuple[str, dict]]:
    """One event per metric point, named by the point's kind (step | epoch)."""
    return [(p["kind"], {k: v for k, v in p.items() if k != "kind"}) for p in points]


def after(*, db_session: Session, job_id: str, seq: int, limit: int) -> list[JobEvent]:
    return list(db_session.scalars(
        select(JobEvent).where(JobEvent.job_id == job_id, JobEvent.seq > seq)
        .order_by(JobEvent.seq).limit(limit)
    ).all())


def last_seq(*, db_session: Session, job_id: str) -> int:
    return db_session.scalar(select(Job.last_event_id).where(Job.id == job_id)) or 0
