"""Job submission and reads. Services flush; the route commits."""
import hashlib
import json

from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from app.config import Settings
from app.datasets import repository as datasets
from app.datasets.service import info as dataset_info
from app.errors import ApiError
from app.jobs import repository
from app.jobs.schemas import JobCreated, JobRead, Progress
from app.ml.check import Limits, Plan, plan_job
from app.ml.errors import SpecError
from app.ml.spec import JobSpec
from app.models import Job
from app.models.base import new_id


def limits(settings: Settings) -> Limits:
    return Limits(max_parameters=settings.max_parameters, max_epochs=settings.max_epochs,
                  max_steps=settings.max_steps, max_layers=settings.max_layers)


def plan(*, db_session: Session, tenant_id: str, spec: JobSpec, settings: Settings) -> tuple[Plan, list[int]]:
    """Runs the pre-flight check against the job's dataset; raises SpecError naming the field."""
    dataset = datasets.get(db_session=db_session, tenant_id=tenant_id, dataset_id=spec.dataset)
    if dataset is None:
        raise SpecError("dataset", f"no dataset {spec.dataset!r}; upload one with POST /v1/datasets")
    return plan_job(spec, dataset_info(dataset), limits(settings)), list(dataset.feature_shape)


def request_hash(spec: JobSpec) -> str:
    return hashlib.sha256(json.dumps(spec.model_dump(mode="json"), sort_keys=True).encode()).hexdigest()


def create(*, db_session: Session, tenant_id: str, spec: JobSpec, settings: Settings,
           idempotency_key: str | None) -> tuple[Job, Plan | None, bool]:
    """Checks and records a job. Returns (job, plan, created); created is False on a replay."""
    digest = request_hash(spec)
    if idempotency_key:
        existing = repository.get_by_idempotency_key(db_session=db_session, tenant_id=tenant_id,
                                                     key=idempotency_key)
        if existing is not None:
            _check_replay(existing, digest)
            return existing, None, False
    job_plan, input_shape = plan(db_session=db_session, tenant_id=tenant_id, spec=spec, settings=settings)
    job = Job(
        id=new_id("job"), tenant_id=tenant_id, dataset_id=spec.dataset, status="queued",
        spec=spec.model_dump(mode="json"), input_shape=input_shape,
        parameter_count=job_plan.parameter_count, idempotency_key=idempotency_key,
        request_hash=digest, total_steps=job_plan.total_steps,
    )
    try:
        with db_session.begin_nested():
            db_session.add(job)
    except IntegrityError:
        # A concurrent retry with the same key won the insert; answer with its job.
        existing = repository.get_by_idempotency_key(db_session=db_session, tenant_id=tenant_id,
                                                     key=idempotency_key or "")
        if existing is None:
            raise
        _check_replay(existing, digest)
        return existing, None, False
    return job, job_plan, True


def _check_replay(job: Job, digest: str) -> None:
    if job.request_hash != digest:
        raise ApiError(409, "this Idempotency-Key was used for a different job spec; "
                            "use a new key for a new job", "Idempotency-Key")


def to_read(job: Job, cls=JobRead, **extra) -> JobRead:
    return cls(
        id=job.id, status=job.status, dataset_id=job.dataset_id, parameter_count=job.parameter_count,
        progress=Progress(epoch=job.epoch, epochs=job.spec["training"]["epochs"], step=job.step,
                          total_steps=job.total_steps),
        latest_metrics=job.latest_metrics, device=job.device, attempts=job.attempts, error=job.error,
        created_at=job.created_at, started_at=job.started_at, finished_at=job.finished_at, **extra,
    )


def created_read(job: Job, job_plan: Plan | None) -> JobCreated:
    return to_read(job, JobCreated, warnings=job_plan.warnings if job_plan else [])
