"""Job submission and reads. Services flush; the request's unit of work (app/db.py) commits."""
import hashlib
import json
from datetime import datetime

import numpy as np
import torch
from sqlalchemy import Row, delete
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from app.config import Settings
from app.datasets import job_data, stored
from app.db import after_commit, complete
from app.errors import ApiError
from app.jobs import events, lifecycle, repository, sending
from app.jobs.downsample import downsample
from app.jobs.lifecycle import ACTIVE, JobStatus
from app.jobs.preprocessing import read as read_preprocessing
from app.jobs.schemas import AttemptRead, EpochPoint, JobCreated, JobRead, MetricsRead, Progress, SpecRead, StepPoint
from app.ml.check import Limits, Plan
from app.ml.preprocessing import split_indices
from app.ml.spec import JobSpec
from app.models import Dataset, Job, JobEvent, Metric
from app.models.base import new_id
from app.quotas import service as quotas
from app.storage import get_store, job_folder
from app.workers import routing


def limits(settings: Settings) -> Limits:
    return Limits(max_parameters=settings.max_parameters, max_epochs=settings.max_epochs,
                  max_steps=settings.max_steps, max_layers=settings.max_layers,
                  max_memory_bytes=settings.max_memory_bytes)


def plan(*, db_session: Session, tenant_id: str, spec: JobSpec, settings: Settings) -> tuple[Plan, list[int]]:
    """Runs the pre-flight check against the job's dataset; raises SpecError naming the field."""
    data = job_data.resolve(db_session=db_session, tenant_id=tenant_id, spec=spec)
    return job_data.plan(spec, data, limits(settings)), list(data.dataset.feature_shape)


def request_hash(spec: JobSpec, *, name: str | None = None, labels: dict[str, str] | None = None) -> str:
    """The digest a replayed Idempotency-Key is compared on: the whole request, so a retry that
    renames or relabels is a different request (409). A job without either hashes as before."""
    body = spec.model_dump(mode="json") | ({"name": name} if name is not None else {}) | \
        ({"labels": labels} if labels else {})
    return hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()


def create(*, db_session: Session, tenant_id: str, spec: JobSpec, settings: Settings,
           idempotency_key: str | None, name: str | None = None,
           labels: dict[str, str] | None = None) -> tuple[Job, Plan | None, bool]:
    """Checks and records a job. Returns (job, plan, created); created is False on a replay."""
    digest = request_hash(spec, name=name, labels=labels)
    if idempotency_key:
        existing = repository.get_by_idempotency_key(db_session=db_session, tenant_id=tenant_id,
                                                     key=idempotency_key)
        if existing is not None:
            _check_replay(existing, digest)
            return existing, None, False
    data = job_data.resolve(db_session=db_session, tenant_id=tenant_id, spec=spec)
    job_plan = job_data.plan(spec, data, limits(settings))
    # In the insert's transaction, after the checks that need no lock: two concurrent submits
    # cannot both pass (app/quotas/service.py says how).
    quotas.check_new_jobs(db_session=db_session, tenant_id=tenant_id, jobs=1)
    job = build(db_session=db_session, tenant_id=tenant_id, spec=spec, data=data, job_plan=job_plan,
                idempotency_key=idempotency_key, request_hash=digest, name=name, labels=labels or {})
    if not idempotency_key:  # nothing unique to collide on: no savepoint (two round trips)
        lifecycle.create(db_session=db_session, job=job)
    else:
        try:
            with db_session.begin_nested():
                lifecycle.create(db_session=db_session, job=job)
        except IntegrityError:
            # A concurrent retry with the same key won the insert; answer with its job.
            existing = repository.get_by_idempotency_key(db_session=db_session, tenant_id=tenant_id,
                                                         key=idempotency_key)
            if existing is None:
                raise
            _check_replay(existing, digest)
            return existing, None, False
    return job, job_plan, True


def build(*, db_session: Session, tenant_id: str, spec: JobSpec, data: job_data.JobData, job_plan: Plan,
          **columns) -> Job:
    """The new job's row for a checked spec (not added yet), storing a builtin dataset's rows first."""
    # A builtin's rows are stored only once a job that uses them has passed its check.
    dataset = job_data.materialize(db_session=db_session, store=get_store(), data=data)
    return Job(
        id=new_id("job"), tenant_id=tenant_id, dataset_id=dataset.id,
        spec=spec.model_dump(mode="json"), input_shape=list(dataset.feature_shape),
        parameter_count=job_plan.parameter_count, total_steps=job_plan.total_steps,
        classes=dataset.classes, queue=routing.route(db_session=db_session, spec=spec), **columns,
    )


def submit(*, db_session: Session, tenant_id: str, spec: JobSpec, settings: Settings,
           idempotency_key: str | None, name: str | None = None,
           labels: dict[str, str] | None = None) -> JobCreated:
    """Records a job (or finds the one this key made) and publishes its message after the commit."""
    job, job_plan, created = create(db_session=db_session, tenant_id=tenant_id, spec=spec,
                                    settings=settings, idempotency_key=idempotency_key, name=name, labels=labels)
    unsent: list[str] = []
    if created:
        after_commit(db_session, lambda: unsent.extend(sending.send([(job.id, job.queue)])))
    # The unit of work completes here rather than when the route returns: the message goes
    # out after the commit (a worker must find the row it names), and the answer says when
    # the broker did not take it (stored all the same: a worker's reaper sends it later).
    complete(db_session)
    reason = routing.UNSENT_REASON if unsent else routing.waiting_reason(db_session=db_session, job=job)
    return created_read(job, job_plan, waiting_reason=reason)


def _check_replay(job: Job, digest: str) -> None:
    if job.request_hash != digest:
        raise ApiError(409, "this Idempotency-Key was used for a different job spec; "
                            "use a new key for a new job", "Idempotency-Key")


def to_read(job: Job | Row, cls=JobRead, *, epochs: int | None = None, **extra) -> JobRead:
    """The job as the API shows it; a Row of repository._READ brings ``epochs`` instead of the spec."""
    return cls(
        id=job.id, name=job.name, labels=job.labels or {}, status=job.status, dataset_id=job.dataset_id,
        parameter_count=job.parameter_count,
        progress=Progress(epoch=job.epoch, step=job.step, total_steps=job.total_steps,
                          epochs=job.spec["training"]["epochs"] if epochs is None else epochs),
        latest_metrics=job.latest_metrics, device=job.device, attempts=job.attempts, error=job.error,
        cancel_requested=bool(job.cancel_requested), checkpoint_step=job.checkpoint_step,
        study_id=job.study_id, variant=job.variant, pack_id=job.pack_id, packed_with=job.packed_with,
        created_at=job.created_at, started_at=job.started_at, finished_at=job.finished_at, **extra,
    )


def created_read(job: Job, job_plan: Plan | None, **extra) -> JobCreated:
    return to_read(job, JobCreated, warnings=job_plan.warnings if job_plan else [], **extra)


def classes_of(*, db_session: Session, job: Job) -> list | None:
    """The class labels the job trained with (jobs from before migration 0002 ask the dataset)."""
    if job.classes is not None or job.dataset_id is None:
        return job.classes
    dataset = db_session.get(Dataset, job.dataset_id)
    return dataset.classes if dataset else None


def sample_rows(*, db_session: Session, job: Job, rows: int = 16):
    """The first rows of the job's dataset (features only), or None once it is deleted."""
    dataset = db_session.get(Dataset, job.dataset_id) if job.dataset_id else None
    if dataset is None:
        return None
    return np.array(stored.open_mapped(get_store(), dataset.sha256)[0][:rows])  # the rows only, not the dataset


def _arrays(db_session: Session, dataset_id: str | None) -> tuple[np.ndarray, np.ndarray] | None:
    dataset = db_session.get(Dataset, dataset_id) if dataset_id else None
    if dataset is None:
        return None
    return stored.open_mapped(get_store(), dataset.sha256)  # mapped: callers take a few rows


def evaluation_rows(*, db_session: Session, job: Job, rows: int) -> tuple[str, np.ndarray, np.ndarray] | None:
    """Up to ``rows`` of the rows the job validated on, raw as uploaded: ("validation", x, y) from
    data.validation_dataset or the split the worker drew (the first draw of a generator seeded with
    training.seed, as worker/training/data.py draws it); ("training", x, y) when the job held out
    none (or its validation dataset is gone). None once its dataset is deleted."""
    spec = JobSpec.model_validate(job.spec)
    if spec.data.validation_dataset and (val := _arrays(db_session, spec.data.validation_dataset)):
        return "validation", np.array(val[0][:rows]), np.array(val[1][:rows])
    train = _arrays(db_session, job.dataset_id)
    if train is None:
        return None
    x, y = train
    train_idx, val_idx = split_indices(len(x), spec.training.validation_split,
                                       torch.Generator().manual_seed(spec.training.seed))
    if val_idx is None:
        return "training", np.array(x[:rows]), np.array(y[:rows])
    picked = val_idx[:rows].numpy()
    return "validation", x[picked], y[picked]


def get_or_404(*, db_session: Session, tenant_id: str, job_id: str) -> Job:
    """The tenant's job; a 404 when the tenant has none by that id."""
    job = repository.get(db_session=db_session, tenant_id=tenant_id, job_id=job_id)
    if job is None:
        raise ApiError(404, f"no job {job_id!r}")
    return job


def remove(*, db_session: Session, job: Job) -> None:
    """Deletes an ended job: its row (no tombstone: a second DELETE is a 404), its metric points and
    events, and once that has committed its folder of artifacts (weights, checkpoint, preprocessing,
    the ONNX export). A study's member goes with its study; a job that may still train, not at all."""
    if job.study_id is not None:
        raise ApiError(409, f"job {job.id} is a member of study {job.study_id}, whose leaderboard counts it; "
                            f"delete the study instead: DELETE /v1/studies/{job.study_id}")
    if job.status in ACTIVE:
        if job.cancel_requested:
            raise ApiError(409, f"job {job.id} is stopping (cancel requested); delete it once it has ended")
        raise ApiError(409, f"job {job.id} is {job.status}; cancel it first: POST /v1/jobs/{job.id}/cancel")
    for table in (Metric, JobEvent):
        db_session.execute(delete(table).where(table.job_id == job.id))
    db_session.execute(delete(Job).where(Job.id == job.id))
    store, folder = get_store(), job_folder(job.id)
    after_commit(db_session, lambda: store.delete_folder(folder))


def read_many(*, db_session: Session, keys: list[tuple[str, str]]) -> dict[tuple[str, str], JobRead]:
    """Gets jobs by (tenant id, job id) with their attempt history and, while they wait, why;
    a pair whose tenant has no such job is left out."""
    found = repository.read_with_status_events(db_session=db_session, keys=keys)
    return {key: from_rows(rows, waiting_reason=routing.waiting_reason(db_session=db_session, job=rows[0]))
            for key, rows in found.items()}


def metrics_page(*, db_session: Session, job_id: str, after_step: int, limit: int,
                 max_points: int | None = None) -> MetricsRead:
    """The loss history after ``after_step``: epoch points and logged steps, in step order.
    With ``max_points``, all of it, each kind cut to at most that many points (app/jobs/downsample.py)."""
    last_event = events.last_seq(db_session=db_session, job_id=job_id)  # before the points: no gap
    if max_points is not None:
        rows = repository.metric_rows(db_session=db_session, job_id=job_id, after_step=after_step)
        epochs = downsample([m for m in rows if m.kind == "epoch"], max_points)
        steps = downsample([m for m in rows if m.kind == "step"], max_points)
        return MetricsRead(job_id=job_id, epochs=[EpochPoint(epoch=m.epoch, step=m.step, **m.values) for m in epochs],
                           steps=[StepPoint(epoch=m.epoch, step=m.step, **m.values) for m in steps],
                           last_step=rows[-1].step if rows else after_step, last_event_id=last_event)
    rows = repository.metrics_after(db_session=db_session, job_id=job_id, after_step=after_step, limit=limit)
    if len(rows) == limit and rows[0].step != rows[-1].step:
        # Never end a page inside a step (a step and its epoch point share one number),
        # or the next page's after_step would skip the rest of it.
        rows = [m for m in rows if m.step != rows[-1].step]
    epochs = [EpochPoint(epoch=m.epoch, step=m.step, **m.values) for m in rows if m.kind == "epoch"]
    steps = [StepPoint(epoch=m.epoch, step=m.step, **m.values) for m in rows if m.kind == "step"]
    last = rows[-1].step if rows else after_step
    return MetricsRead(job_id=job_id, epochs=epochs, steps=steps, last_step=last, last_event_id=last_event)


def spec_of(job: Job) -> SpecRead:
    return SpecRead(job_id=job.id, spec=job.spec, input_shape=job.input_shape,
                    preprocessing=read_preprocessing(job.id))


def from_rows(rows, *, waiting_reason: str | None = None) -> JobRead:
    """The JobRead of repository._READ's rows: the job, once per status event."""
    job = rows[0]
    history = attempt_history([(r.event, r.event_at) for r in rows if r.event is not None])
    return to_read(job, epochs=job.epochs, attempt_history=history, waiting_reason=waiting_reason)


def attempt_history(status_events: list[tuple[dict, datetime]]) -> list[AttemptRead]:
    """Each attempt's worker, times and outcome, from the job's status events (data, time) in order."""
    history: list[AttemptRead] = []
    for data, at in status_events:
        if data.get("status") == JobStatus.RUNNING:
            history.append(AttemptRead(attempt=data.get("attempt", len(history) + 1),
                                       worker=data.get("worker"), started_at=at))
        elif history and history[-1].outcome is None and data.get("status") != JobStatus.QUEUED:
            history[-1].ended_at = at
            history[-1].outcome = data["status"]
            history[-1].reason = data.get("reason") or data.get("error")
    return history
