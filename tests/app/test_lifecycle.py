"""The job life cycle's table walked on a real database (SQLite and PostgreSQL, both built by the migrations).

For every transition and every status, a job is set up in that status with what the
transition's guard asks for besides it (its worker, an expired lease, its attempt count), so
that the status alone decides: an allowed move changes the row and records exactly its event;
any other is refused and changes nothing. The cases come from lifecycle.TRANSITIONS and
JobStatus, so a new status or a new row is walked without a new test; a new transition
function fails test_every_transition_has_a_call until it has one here.
"""
import uuid
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, Callable

import psycopg
import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from app.db import make_engine
from app.errors import ApiError
from app.jobs import lifecycle, progress
from app.jobs.lifecycle import TRANSITIONS, JobStatus
from app.migrate import upgrade
from app.models import Job, JobEvent, Metric, Tenant
from app.models.base import new_id, utcnow
from tests.conftest import PG_ADMIN_URL, require_services

WORKER, CLAIMER, OTHER = "worker-1", "worker-2", "worker-3"
MAX_ATTEMPTS = 3
STALE, FRESH = timedelta(hours=-1), timedelta(hours=1)  # a lease's end, from now


@dataclass(frozen=True)
class Call:
    """How the walk makes one transition, the job it starts from, and what it records."""

    make: Callable[[Session, str, JobStatus | None], Any]  # (session, job id, chosen target) -> result
    refusal: Any  # what make returns when refused (ApiError: it raises a 409)
    event: Callable[[dict, JobStatus], dict | None]  # (the job's row before, new status) -> event data
    job: dict = field(default_factory=dict)  # the job's columns besides its status
    chooses_target: bool = False  # the caller names the new status (finish)


CALLS: dict[str, Call] = {
    "claim": Call(
        make=lambda s, job_id, _: lifecycle.claim(db_session=s, job_id=job_id, worker_id=CLAIMER,
                                                  lease_seconds=60),
        refusal=None, job={"worker_id": WORKER, "lease": STALE, "attempts": 1},
        event=lambda before, status: {"status": status, "attempt": before["attempts"] + 1, "worker": CLAIMER}),
    "finish": Call(
        make=lambda s, job_id, status: lifecycle.finish(db_session=s, job_id=job_id, worker_id=WORKER,
                                                        status=status, error="why", weights_path="w"),
        refusal=False, job={"worker_id": WORKER, "lease": FRESH, "attempts": 1}, chooses_target=True,
        event=lambda before, status: {"status": status, "error": "why"}),
    "hand_back": Call(
        make=lambda s, job_id, _: lifecycle.hand_back(db_session=s, job_id=job_id, worker_id=WORKER),
        refusal=False, job={"worker_id": WORKER, "lease": FRESH, "attempts": 1},
        event=lambda before, status: {
            "status": status, "reason": f"worker {WORKER} shut down; handed back to resume from its checkpoint"}),
    "retry": Call(
        make=lambda s, job_id, _: lifecycle.retry(db_session=s, job_id=job_id, worker_id=WORKER,
                                                  reason="the store was down"),
        refusal=False, job={"worker_id": WORKER, "lease": FRESH, "attempts": 1},
        event=lambda before, status: {"status": status, "reason": "the store was down"}),
    "cancel": Call(
        make=lambda s, job_id, _: lifecycle.cancel(db_session=s, job=s.get(Job, job_id)),
        refusal=ApiError, job={"worker_id": WORKER, "lease": FRESH, "attempts": 1},
        event=lambda before, status: {"status": status, "reason": "cancelled by request"}),
    "release": Call(
        make=lambda s, job_id, _: lifecycle.release(db_session=s, job_ids=[job_id]),
        refusal=[], job={"worker_id": None, "lease": FRESH, "attempts": 0},
        event=lambda before, status: {"status": status}),
    "requeue_lost": Call(
        make=lambda s, job_id, _: lifecycle.requeue_lost(db_session=s, max_attempts=MAX_ATTEMPTS),
        refusal=[], job={"worker_id": WORKER, "lease": STALE, "attempts": MAX_ATTEMPTS - 1},
        event=lambda before, status: {
            "status": status, "attempt": before["attempts"],
            "reason": f"worker {WORKER} was lost during attempt {before['attempts']}; retrying"}),
    "give_up_lost": Call(
        make=lambda s, job_id, _: lifecycle.give_up_lost(db_session=s, max_attempts=MAX_ATTEMPTS),
        refusal=0, job={"worker_id": WORKER, "lease": STALE, "attempts": MAX_ATTEMPTS},
        event=lambda before, status: {
            "status": status, "error": f"worker lost {MAX_ATTEMPTS} times; last on {WORKER}. The job may "
                                       "need more memory than a worker has; try a smaller batch_size or model."}),
}


def _cases():
    """(transition, from status, chosen target) for every transition a job can start from, every status."""
    for name in dict.fromkeys(t.name for t in TRANSITIONS if t.sources):  # create starts from no job
        chooses = name in CALLS and CALLS[name].chooses_target
        targets = lifecycle.transitions(name)[0].targets if chooses else {None}
        for target in sorted(targets, key=str):
            for status in JobStatus:
                yield pytest.param(name, status, target,
                                   id=f"{name}-from-{status}" + (f"-to-{target}" if target else ""))


@pytest.fixture(scope="module", params=["sqlite", pytest.param("postgresql", marks=pytest.mark.services)])
def sessions(request, tmp_path_factory):
    """Sessions on a fresh database the migrations built, with one tenant; module-wide.

    PostgreSQL gets a database of its own: the reaper's transitions sweep every job there.
    """
    if request.param == "sqlite":
        url, drop = f"sqlite:///{tmp_path_factory.mktemp('lifecycle') / 'lifecycle.db'}", None
    else:
        require_services()
        name = f"trainyard_lifecycle_{uuid.uuid4().hex[:8]}"
        with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        url = PG_ADMIN_URL.rsplit("/", 1)[0].replace("postgresql://", "postgresql+psycopg://") + f"/{name}"
        drop = f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'
    upgrade(url)
    engine = make_engine(url)
    factory = sessionmaker(engine, expire_on_commit=False)
    with factory() as s:
        s.add(Tenant(id=TENANT, name="lifecycle"))
        s.commit()
    yield factory
    engine.dispose()
    if drop:
        with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
            conn.execute(drop)


TENANT = "tn_lifecycle"


def _job(sessions, status: JobStatus, *, worker_id=WORKER, lease=FRESH, attempts=1) -> str:
    """A job in ``status`` with one earlier event and one metric point; returns its id.

    Other jobs the walk left behind are ended first: the reaper's transitions sweep all jobs.
    """
    with sessions() as s:
        for job in s.scalars(select(Job).where(Job.status == JobStatus.RUNNING)):
            job.lease_expires_at = utcnow() + FRESH
        job = Job(id=new_id("job"), tenant_id=TENANT, status=status, spec={"training": {"epochs": 1}},
                  input_shape=[1], parameter_count=1, worker_id=worker_id, attempts=attempts,
                  lease_expires_at=utcnow() + lease, step=5, last_event_id=1)
        s.add(job)
        s.add(JobEvent(job_id=job.id, seq=1, kind="status", data={"status": str(status)}))
        s.add(Metric(job_id=job.id, kind="step", epoch=0, step=5, values={"loss": 1.0}))
        s.commit()
        return job.id


def _snapshot(sessions, job_id: str) -> tuple[dict, list[tuple]]:
    with sessions() as s:
        job = s.get(Job, job_id)
        row = {c.key: getattr(job, c.key) for c in Job.__mapper__.column_attrs}
        events = [(e.seq, e.kind, e.data) for e in
                  s.scalars(select(JobEvent).where(JobEvent.job_id == job_id).order_by(JobEvent.seq))]
        metrics = list(s.scalars(select(Metric.step).where(Metric.job_id == job_id)))
        return {**row, "metric_steps": metrics}, events


def _make(sessions, call: Call, job_id: str, target) -> Any:
    with sessions() as s:
        try:
            result = call.make(s, job_id, target)
        except ApiError as exc:
            s.rollback()
            return exc
        s.commit()
        return result


@pytest.mark.parametrize("name, status, target", list(_cases()))
def test_each_transition_from_each_status(sessions, name, status, target):
    call = CALLS[name]
    job = dict(call.job)
    job_id = _job(sessions, status, worker_id=job["worker_id"], lease=job["lease"], attempts=job["attempts"])
    before, events_before = _snapshot(sessions, job_id)
    allowed = [t for t in lifecycle.transitions(name) if status in t.sources]

    result = _make(sessions, call, job_id, target)
    after, events_after = _snapshot(sessions, job_id)

    if not allowed:
        if call.refusal is ApiError:
            assert isinstance(result, ApiError) and result.status == 409, result
            assert result.message == (f"job is already {status}; only held, queued, retrying or running "
                                      "jobs can be cancelled")
        else:
            assert result == call.refusal
        assert (after, events_after) == (before, events_before)
        return
    (row,) = allowed
    new_status = target if call.chooses_target else lifecycle.target(row)
    assert not isinstance(result, ApiError) and result not in (None, False, 0, []), result
    assert after["status"] == new_status
    new_events = events_after[len(events_before):]
    assert events_after[:len(events_before)] == events_before
    if row.records_event:
        assert new_events == [(before["last_event_id"] + 1, "status", call.event(before, new_status))]
    else:
        assert new_events == []
        assert after != before  # it did something else instead (cancel: cancel_requested)


@pytest.mark.parametrize("status", list(JobStatus))
@pytest.mark.parametrize("lease", [STALE, FRESH], ids=["stale-lease", "fresh-lease"])
def test_claimable_says_what_a_claim_would_do_and_changes_nothing(sessions, status, lease):
    # The worker's main process drops a message whose job is not claimable (worker/duplicates.py):
    # a job it calls unclaimable that a claim would take would never train.
    job_id = _job(sessions, status, lease=lease)
    before = _snapshot(sessions, job_id)
    with sessions() as s:
        said = lifecycle.claimable(db_session=s, job_id=job_id)
    assert _snapshot(sessions, job_id) == before
    assert said == (_make(sessions, CALLS["claim"], job_id, None) is not None)


def test_every_transition_has_a_call():
    assert set(CALLS) == {t.name for t in TRANSITIONS if t.sources}


def test_create_adds_a_queued_job_with_its_first_event(sessions):
    with sessions() as s:
        job = Job(id=new_id("job"), tenant_id=TENANT, spec={}, input_shape=[1], parameter_count=1)
        lifecycle.create(db_session=s, job=job)
        s.commit()
    row, events = _snapshot(sessions, job.id)
    assert row["status"] == JobStatus.QUEUED and row["last_event_id"] == 1
    assert events == [(1, "status", {"status": "queued"})]


@pytest.mark.parametrize("name, job", [
    ("claim", {"lease": FRESH, "attempts": 1}),  # running and its worker alive
    ("finish", {"worker_id": OTHER}), ("hand_back", {"worker_id": OTHER}), ("retry", {"worker_id": OTHER}),  # not this worker's job
    ("requeue_lost", {"lease": FRESH, "attempts": 1}), ("requeue_lost", {"lease": STALE, "attempts": MAX_ATTEMPTS}),
    ("give_up_lost", {"lease": FRESH, "attempts": MAX_ATTEMPTS}), ("give_up_lost", {"lease": STALE, "attempts": 1}),
])
def test_a_running_job_outside_the_guard_is_refused_and_unchanged(sessions, name, job):
    call = CALLS[name]
    job_id = _job(sessions, JobStatus.RUNNING, **{**call.job, **job})
    before = _snapshot(sessions, job_id)
    assert _make(sessions, call, job_id, JobStatus.SUCCEEDED) == call.refusal
    assert _snapshot(sessions, job_id) == before


@pytest.mark.parametrize("status", sorted(set(JobStatus) - lifecycle.transitions("finish")[0].targets))
def test_finish_refuses_a_status_that_is_not_an_end(sessions, status):
    job_id = _job(sessions, JobStatus.RUNNING)
    with sessions() as s, pytest.raises(ValueError, match="cannot finish"):
        lifecycle.finish(db_session=s, job_id=job_id, worker_id=WORKER, status=status)


# A running job's own worker's writes (app/jobs/progress.py), each with its refusal.
PROGRESS = {
    "renew_lease": (lambda s, job_id, w: progress.renew_lease(db_session=s, job_id=job_id, worker_id=w,
                                                                lease_seconds=600), False),
    "set_device": (lambda s, job_id, w: progress.set_device(db_session=s, job_id=job_id, worker_id=w,
                                                              device="cpu"), None),
    "record_progress": (lambda s, job_id, w: progress.record_progress(
        db_session=s, job_id=job_id, worker_id=w, points=[{"kind": "step", "epoch": 0, "step": 6, "loss": 0.5}],
        epoch=0, step=6, latest=None), None),
    "mark_checkpoint": (lambda s, job_id, w: progress.mark_checkpoint(db_session=s, job_id=job_id, worker_id=w,
                                                                        step=4), None),
    "rewind": (lambda s, job_id, w: progress.rewind(db_session=s, job_id=job_id, worker_id=w, step=4,
                                                    reason="test"), False),
    "resume_from": (lambda s, job_id, w: progress.resume_from(db_session=s, job_id=job_id, worker_id=w,
                                                                step=None), False),
}


@pytest.mark.parametrize("name", PROGRESS)
@pytest.mark.parametrize("status, worker", [(s, WORKER) for s in JobStatus] + [(JobStatus.RUNNING, OTHER)])
def test_progress_writes_only_the_running_job_of_its_own_worker(sessions, name, status, worker):
    write, refusal = PROGRESS[name]
    job_id = _job(sessions, status)
    before = _snapshot(sessions, job_id)
    with sessions() as s:
        result = write(s, job_id, worker)
        s.commit()
    after = _snapshot(sessions, job_id)
    if status == JobStatus.RUNNING and worker == WORKER:
        assert after != before and after[0]["status"] == JobStatus.RUNNING
    else:
        assert result == refusal and after == before
