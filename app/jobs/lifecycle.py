"""A job's life cycle, its one owner: the statuses, who may move a job from which to which, and how.

Each move is one conditional UPDATE (``WHERE status IN`` the move's sources) and its status
event, in the caller's transaction: two moves racing on one job (a cancel and a claim, two
deliveries' claims, a finish and the reaper) change it at most once; whichever commits first
wins, and the other finds no row to change. Nothing else writes ``jobs.status``.
Functions take the caller's session and never commit.
"""
from dataclasses import dataclass
from datetime import timedelta
from enum import StrEnum

from sqlalchemy import ColumnElement, and_, or_, select, update
from sqlalchemy.orm import Session

from app.errors import ApiError
from app.jobs import events
from app.models import Job
from app.models.base import utcnow


class JobStatus(StrEnum):
    # A study's member waiting for its study's turn (at most `parallel` members at once);
    # not claimable and not sent until the study releases it.
    HELD = "held"
    QUEUED = "queued"
    # Queued again after its worker was lost or shut down; the next claim resumes it.
    RETRYING = "retrying"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"
    # A study's member stopped early by the study's pruner (its error says why).
    PRUNED = "pruned"


WAITING = frozenset({JobStatus.QUEUED, JobStatus.RETRYING})  # claimable
ACTIVE = WAITING | {JobStatus.RUNNING, JobStatus.HELD}
TERMINAL = frozenset({JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.CANCELLED, JobStatus.PRUNED})


class Actor(StrEnum):
    API = "api"
    WORKER = "worker"
    REAPER = "reaper"
    STUDY = "study"  # a study's conductor (app/studies/conductor.py), in an API or worker process


@dataclass(frozen=True)
class Transition:
    """One allowed move: a job in one of ``sources`` goes to one of ``targets``, made by ``actor``."""

    name: str  # the function below that makes it
    actor: Actor
    sources: frozenset[JobStatus]  # empty: a new job
    targets: frozenset[JobStatus]
    # The condition besides the status, or what the move does instead of a new status. Attempts
    # left: fewer than MAX_ATTEMPTS so far.
    when: str = ""
    records_event: bool = True  # a status event of the new status


def _move(name: str, actor: Actor, sources, targets, when: str = "", records_event: bool = True):
    return Transition(name, actor, frozenset(sources), frozenset(targets), when, records_event)


S = JobStatus
TRANSITIONS: tuple[Transition, ...] = (
    _move("create", Actor.API, (), {S.QUEUED}),
    _move("create", Actor.STUDY, (), {S.HELD}, "a study's member"),
    _move("release", Actor.STUDY, {S.HELD}, {S.QUEUED}, "its study has room"),
    _move("claim", Actor.WORKER, WAITING, {S.RUNNING}),
    _move("claim", Actor.WORKER, {S.RUNNING}, {S.RUNNING}, "its lease expired"),
    _move("finish", Actor.WORKER, {S.RUNNING}, TERMINAL, "its worker"),
    _move("hand_back", Actor.WORKER, {S.RUNNING}, {S.RETRYING}, "its worker, shutting down"),
    _move("retry", Actor.WORKER, {S.RUNNING}, {S.RETRYING}, "its worker, the store unreachable"),
    _move("cancel", Actor.API, WAITING | {S.HELD}, {S.CANCELLED}),
    _move("cancel", Actor.API, {S.RUNNING}, {S.RUNNING}, "sets cancel_requested", records_event=False),
    _move("requeue_lost", Actor.REAPER, {S.RUNNING}, {S.RETRYING}, "lease expired, attempts left"),
    _move("give_up_lost", Actor.REAPER, {S.RUNNING}, {S.FAILED}, "lease expired, no attempts left"),
)
del S


def transitions(name: str) -> tuple[Transition, ...]:
    """The table's rows for one transition function, in table order."""
    rows = tuple(t for t in TRANSITIONS if t.name == name)
    if not rows:
        raise KeyError(f"no transition {name!r}")
    return rows


def sources(name: str) -> frozenset[JobStatus]:
    """Every status the transition may start from."""
    return frozenset().union(*(t.sources for t in transitions(name)))


def target(row: Transition) -> JobStatus:
    """The one status a single-target row leads to."""
    (status,) = row.targets
    return status


def owned(job_id: str, worker_id: str) -> ColumnElement[bool]:
    """The job is running and still this worker's: the guard of every write a worker makes to it.

    A worker that lost its lease (the reaper requeued the job, another worker claimed it)
    must not write points, checkpoints or an end into the next attempt's job.
    """
    return and_(Job.id == job_id, Job.worker_id == worker_id, Job.status == JobStatus.RUNNING)


_CREATE, _CREATE_HELD = transitions("create")


def create(*, db_session: Session, job: Job, held: bool = False) -> None:
    """Adds a new job, queued (a study's member: held), with its first status event (seq 1)."""
    job.status = target(_CREATE_HELD if held else _CREATE)
    db_session.add(job)
    events.first(db_session=db_session, job=job, event=events.status_event(job.status))


_CLAIM_WAITING, _CLAIM_STALE = transitions("claim")


def claimable_now(now) -> ColumnElement[bool]:
    """The jobs a claim would take at ``now``: waiting ones, and running ones whose lease expired."""
    return or_(Job.status.in_(_CLAIM_WAITING.sources),
               and_(Job.status.in_(_CLAIM_STALE.sources), Job.lease_expires_at < now))


def _claimable(job_id: str, now) -> ColumnElement[bool]:
    return and_(Job.id == job_id, claimable_now(now))


def claimable(*, db_session: Session, job_id: str) -> bool:
    """Whether a claim of the job would succeed now (a read: it changes nothing).

    A worker asks before it hands a message to its training process: a duplicate (a resent
    message, a second delivery) then costs one read instead of a training process's time.
    The claim itself still decides: a job may be claimed elsewhere between the two.
    """
    return db_session.execute(select(Job.id).where(_claimable(job_id, utcnow()))).first() is not None


def claim(*, db_session: Session, job_id: str, worker_id: str, lease_seconds: float) -> int | None:
    """Moves a waiting job (or a running one whose lease expired) to running for this worker.

    Returns the attempt number, or None when another delivery already holds the job:
    that delivery trains, this one does not.
    """
    now = utcnow()
    attempt = db_session.execute(
        update(Job)
        .where(_claimable(job_id, now))
        .values(status=target(_CLAIM_WAITING), attempts=Job.attempts + 1, worker_id=worker_id,
                lease_expires_at=now + timedelta(seconds=lease_seconds), started_at=now, error=None)
        .returning(Job.attempts)
        .execution_options(synchronize_session=False)
    ).scalar_one_or_none()
    if attempt:
        events.append(db_session=db_session, job_id=job_id,
                      events=[events.status_event(target(_CLAIM_WAITING), attempt=attempt, worker=worker_id)])
    return attempt


# finish and hand_back start from running, the status in owned(): only the job's own worker makes them.
_FINISH, = transitions("finish")


def finish(*, db_session: Session, job_id: str, worker_id: str, status: JobStatus,
           error: str | None = None, weights_path: str | None = None) -> bool:
    """Ends this worker's running job with ``status``; False when it is no longer the worker's."""
    if status not in _FINISH.targets:
        raise ValueError(f"a job cannot finish {status!r}; only {sorted(_FINISH.targets)}")
    result = db_session.execute(
        update(Job).where(owned(job_id, worker_id))
        .values(status=status, error=error, weights_path=weights_path, finished_at=utcnow(),
                lease_expires_at=None)
        .execution_options(synchronize_session=False)
    )
    if result.rowcount != 1:
        return False
    events.append(db_session=db_session, job_id=job_id, events=[events.status_event(status, error=error)])
    return True


_HAND_BACK, = transitions("hand_back")


def hand_back(*, db_session: Session, job_id: str, worker_id: str) -> bool:
    """A worker shutting down returns its running job to the queue, checkpoint written.

    The attempt is not counted: the job was not lost, its worker was stopped on purpose.
    """
    reason = f"worker {worker_id} shut down; handed back to resume from its checkpoint"
    status = target(_HAND_BACK)
    result = db_session.execute(
        update(Job).where(owned(job_id, worker_id))
        .values(status=status, worker_id=None, lease_expires_at=None, attempts=Job.attempts - 1,
                error=reason, enqueued_at=utcnow())
        .execution_options(synchronize_session=False))
    if result.rowcount:
        events.append(db_session=db_session, job_id=job_id,
                      events=[events.status_event(status, reason=reason)])
    return bool(result.rowcount)


_RETRY, = transitions("retry")


def retry(*, db_session: Session, job_id: str, worker_id: str, reason: str) -> bool:
    """A worker that could not reach the artifact store (to read the job's data, or to store
    its weights) returns the job to the queue, to resume from its last stored checkpoint.

    The attempt counts: the worker gives the job back at most MAX_ATTEMPTS - 1 times.
    """
    status = target(_RETRY)
    result = db_session.execute(
        update(Job).where(owned(job_id, worker_id))
        .values(status=status, worker_id=None, lease_expires_at=None, error=reason, enqueued_at=utcnow())
        .execution_options(synchronize_session=False))
    if result.rowcount:
        events.append(db_session=db_session, job_id=job_id, events=[events.status_event(status, reason=reason)])
    return bool(result.rowcount)


_RELEASE, = transitions("release")


def release(*, db_session: Session, job_ids: list[str]) -> list[str]:
    """Moves a study's held members to queued; returns those it moved (to be sent after the commit)."""
    status, released = target(_RELEASE), []
    for job_id in job_ids:
        moved = db_session.execute(
            update(Job).where(Job.id == job_id, Job.status.in_(_RELEASE.sources))
            .values(status=status, enqueued_at=utcnow()).execution_options(synchronize_session=False)
        ).rowcount
        if moved:
            events.append(db_session=db_session, job_id=job_id, events=[events.status_event(status)])
            released.append(job_id)
    return released


_CANCEL_WAITING, _CANCEL_RUNNING = transitions("cancel")


def cancel(*, db_session: Session, job: Job) -> Job:
    """A waiting job is cancelled at once; a running one is asked to stop at its next step.

    A job that has ended is a 409 (as is one that ended between our read and the update).
    """
    if job.status not in sources("cancel"):
        raise ApiError(409, f"job is already {job.status}; only held, queued, retrying or running "
                            "jobs can be cancelled")
    status = target(_CANCEL_WAITING)
    cancelled = db_session.execute(
        update(Job).where(Job.id == job.id, Job.status.in_(_CANCEL_WAITING.sources))
        .values(status=status, finished_at=utcnow(), error="cancelled by request")
        .execution_options(synchronize_session=False)).rowcount
    if cancelled:
        events.append(db_session=db_session, job_id=job.id,
                      events=[events.status_event(status, reason="cancelled by request")])
    else:
        requested = db_session.execute(
            update(Job).where(Job.id == job.id, Job.status.in_(_CANCEL_RUNNING.sources))
            .values(cancel_requested=True).execution_options(synchronize_session=False)).rowcount
        if not requested:  # it finished between our read and the update
            db_session.refresh(job)
            raise ApiError(409, f"job is already {job.status}")
    db_session.refresh(job)
    return job


_REQUEUE_LOST, = transitions("requeue_lost")
_GIVE_UP_LOST, = transitions("give_up_lost")


def _lost(row: Transition, now) -> ColumnElement[bool]:
    """Jobs in the row's sources whose lease expired before ``now``: their worker is gone."""
    return and_(Job.status.in_(row.sources), Job.lease_expires_at < now)


def requeue_lost(*, db_session: Session, max_attempts: int) -> list[str]:
    """Moves running jobs whose lease expired to retrying; returns their ids.

    Moving them out of running (rather than leaving them there) means each lost job is
    re-enqueued once, not on every sweep until a worker is free.
    """
    now = utcnow()
    status = target(_REQUEUE_LOST)
    lost = db_session.scalars(
        select(Job).where(_lost(_REQUEUE_LOST, now), Job.attempts < max_attempts)).all()
    requeued = []
    for job in lost:
        reason = f"worker {job.worker_id} was lost during attempt {job.attempts}; retrying"
        result = db_session.execute(
            update(Job).where(Job.id == job.id, _lost(_REQUEUE_LOST, now))
            .values(status=status, worker_id=None, lease_expires_at=None, error=reason, enqueued_at=now)
            .execution_options(synchronize_session=False))
        if result.rowcount == 1:
            events.append(db_session=db_session, job_id=job.id, events=[
                events.status_event(status, attempt=job.attempts, reason=reason)])
            requeued.append(job.id)
    return requeued


def give_up_lost(*, db_session: Session, max_attempts: int) -> int:
    """Fails running jobs whose lease expired after their last allowed attempt; returns how many."""
    now = utcnow()
    status = target(_GIVE_UP_LOST)
    lost = db_session.scalars(
        select(Job).where(_lost(_GIVE_UP_LOST, now), Job.attempts >= max_attempts)).all()
    for job in lost:
        error = (f"worker lost {job.attempts} times; last on {job.worker_id}. "
                 "The job may need more memory than a worker has; try a smaller "
                 "batch_size or model.")
        result = db_session.execute(
            update(Job).where(Job.id == job.id, _lost(_GIVE_UP_LOST, now))
            .values(status=status, finished_at=now, lease_expires_at=None, error=error)
            .execution_options(synchronize_session=False))
        if result.rowcount == 1:
            events.append(db_session=db_session, job_id=job.id,
                          events=[events.status_event(status, error=error)])
    return len(lost)
