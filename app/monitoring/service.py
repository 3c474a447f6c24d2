"""The service's state for GET /metrics, read from the database at scrape time.

Why the database and not each process's counters: the workers are many processes on many
machines, and they have no HTTP endpoint; the database already holds every job, worker and
status event, and is the source of truth, so one API scrape sees the whole service. Each
read below is one aggregate query (or one over the running jobs, a few rows): a scrape
costs a handful of queries whatever the history's length (docs/operations.md has timings).
Only counts, durations and worker names come out: no tenant's ids, names or specs.
"""
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import ColumnElement, and_, case, func, select
from sqlalchemy.orm import Session

from app.jobs.lifecycle import JobStatus
from app.models import Job, JobEvent, WebhookDelivery, Worker
from app.models.base import utcnow

QUEUE_WAIT_BUCKETS = (1, 5, 15, 30, 60, 120, 300, 600, 1800, 3600, 4 * 3600, 24 * 3600)
RUN_BUCKETS = (1, 5, 15, 30, 60, 300, 600, 1800, 3600, 4 * 3600, 12 * 3600, 24 * 3600)
# The reaper's give-up (app/jobs/lifecycle.give_up_lost) records why in the error;
# tests/api/test_metrics_endpoint.py runs the real transition, so a reworded message fails there.
GIVEN_UP_ERROR = "worker lost %"


@dataclass
class Histogram:
    """Cumulative bucket counts (one per bound, then +Inf = count), and the sum."""

    buckets: list[int]
    count: int
    total: float


@dataclass
class WorkerState:
    name: str
    kind: str
    device: str
    state: str  # busy | idle | draining | offline
    heartbeat_age: float
    memory_bytes: int | None
    steps_per_second: float = 0.0


@dataclass
class WebhookState:
    deliveries: dict[str, int]  # status (pending | delivered | failed) -> deliveries
    failed_attempts: int  # attempts that got no 2xx (a delivered one's attempts but its last)
    oldest_pending_seconds: float  # 0 when none is pending: a stuck sender shows as a growing age


@dataclass
class Snapshot:
    jobs: dict[tuple[str, str], int]  # (status, queue) -> jobs
    queue_wait: dict[str, Histogram]  # queue -> histogram
    run_time: dict[tuple[str, str], Histogram]  # (queue, status) -> histogram
    steps_per_second: dict[str, float]  # queue -> sum over its running jobs
    workers: list[WorkerState] = field(default_factory=list)
    requeues: int = 0
    given_up: int = 0
    webhooks: WebhookState = field(default_factory=lambda: WebhookState({}, 0, 0.0))


def seconds_between(db_session: Session, later, earlier) -> ColumnElement:
    if db_session.get_bind().dialect.name == "postgresql":
        return func.extract("epoch", later - earlier)
    return (func.julianday(later) - func.julianday(earlier)) * 86400.0


def _histograms(db_session: Session, seconds: ColumnElement, bounds: tuple, where, *group) -> dict:
    columns = [func.sum(case((seconds <= b, 1), else_=0)) for b in bounds]
    rows = db_session.execute(select(*group, func.count(), func.coalesce(func.sum(seconds), 0.0), *columns)
                              .where(where).group_by(*group)).all()
    out = {}
    for row in rows:
        key, (count, total, *buckets) = tuple(row[:len(group)]), row[len(group):]
        out[key[0] if len(key) == 1 else key] = Histogram([int(b or 0) for b in buckets], int(count), float(total))
    return out


def job_counts(db_session: Session) -> dict[tuple[str, str], int]:
    rows = db_session.execute(select(Job.status, Job.queue, func.count()).group_by(Job.status, Job.queue))
    return {(status, queue): n for status, queue, n in rows}


def queue_waits(db_session: Session) -> dict[str, Histogram]:
    """Submit to first claim, of jobs that started once (a retried job's started_at is its latest claim)."""
    wait = seconds_between(db_session, Job.started_at, Job.created_at)
    return _histograms(db_session, wait, QUEUE_WAIT_BUCKETS,
                       and_(Job.started_at.is_not(None), Job.attempts == 1), Job.queue)


def run_times(db_session: Session) -> dict[tuple[str, str], Histogram]:
    """Claim to end of the ended jobs' last attempt, by queue and how it ended."""
    run = seconds_between(db_session, Job.finished_at, Job.started_at)
    return _histograms(db_session, run, RUN_BUCKETS,
                       and_(Job.started_at.is_not(None), Job.finished_at.is_not(None)), Job.queue, Job.status)


def running_rates(db_session: Session) -> dict[str, tuple[str, float]]:
    """Job id -> (queue, steps per second of its latest epoch), of the running jobs: a few rows."""
    rows = db_session.execute(select(Job.id, Job.queue, Job.total_steps, Job.spec, Job.latest_metrics)
                              .where(Job.status == JobStatus.RUNNING)).all()
    out = {}
    for job_id, queue, total_steps, spec, latest in rows:
        epochs = (spec or {}).get("training", {}).get("epochs") or 0
        seconds = (latest or {}).get("epoch_seconds")
        out[job_id] = (queue, total_steps / epochs / seconds if epochs and seconds else 0.0)
    return out


def lost_leases(db_session: Session) -> tuple[int, int]:
    """(requeued, given up): the reaper's status events for jobs whose worker's lease expired.

    A requeue is the one retrying event with an attempt (a shutdown's hand-back has none).
    """
    status = JobEvent.data["status"].as_string()
    requeued = and_(status == JobStatus.RETRYING, JobEvent.data["attempt"].as_integer().is_not(None))
    given_up = and_(status == JobStatus.FAILED, JobEvent.data["error"].as_string().like(GIVEN_UP_ERROR))
    row = db_session.execute(select(func.sum(case((requeued, 1), else_=0)), func.sum(case((given_up, 1), else_=0)))
                             .where(JobEvent.kind == "status")).one()
    return int(row[0] or 0), int(row[1] or 0)


def workers(db_session: Session, *, offline_seconds: float, now: datetime,
            rates: dict[str, tuple[str, float]]) -> list[WorkerState]:
    """Every worker not stopped (the registry forgets one gone 7 days), what it is doing, and how fast."""
    rows = db_session.execute(
        select(Worker.name, Worker.kind, Worker.device_name, Worker.status, Worker.heartbeat_at,
               Worker.memory_bytes, Job.id)
        .outerjoin(Job, and_(Job.id == Worker.current_job_id, Job.status == JobStatus.RUNNING))
        .where(Worker.status != "stopped").order_by(Worker.name)).all()
    cutoff = now - timedelta(seconds=offline_seconds)
    out = []
    for name, kind, device, status, beat, memory, running_job in rows:
        state = ("offline" if beat < cutoff else "draining" if status == "draining"
                 else "busy" if running_job else "idle")
        rate = rates.get(running_job, ("", 0.0))[1] if state != "offline" else 0.0
        out.append(WorkerState(name, kind, device, state, (now - beat).total_seconds(), memory, rate))
    return out


def webhook_state(db_session: Session, now: datetime) -> WebhookState:
    """One aggregate over the deliveries, by status."""
    d = WebhookDelivery
    rows = db_session.execute(select(d.status, func.count(), func.coalesce(func.sum(d.attempts), 0),
                                     func.min(d.created_at)).group_by(d.status)).all()
    counts = {status: int(n) for status, n, _, _ in rows}
    attempts = sum(int(a) for _, _, a, _ in rows) - counts.get("delivered", 0)
    oldest = next((first for status, _, _, first in rows if status == "pending"), None)
    if oldest is not None and oldest.tzinfo is None:  # SQLite's MIN() comes back as naive UTC
        oldest = oldest.replace(tzinfo=now.tzinfo)
    age = (now - oldest).total_seconds() if oldest is not None else 0.0
    return WebhookState(counts, attempts, max(age, 0.0))


def snapshot(*, db_session: Session, offline_seconds: float) -> Snapshot:
    now = utcnow()
    rates = running_rates(db_session)
    per_queue: dict[str, float] = {}
    for queue, rate in rates.values():
        per_queue[queue] = per_queue.get(queue, 0.0) + rate
    found = workers(db_session, offline_seconds=offline_seconds, now=now, rates=rates)
    requeues, given_up = lost_leases(db_session)
    return Snapshot(jobs=job_counts(db_session), queue_wait=queue_waits(db_session), run_time=run_times(db_session),
                    steps_per_second=per_queue, workers=found, requeues=requeues, given_up=given_up,
                    webhooks=webhook_state(db_session, now))
