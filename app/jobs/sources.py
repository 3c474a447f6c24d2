"""The jobs a job starts from (init.from_job) or learns from (distill.teacher): the tenant's own,
succeeded, with their weights still stored. Read by the pre-flight (app/datasets/job_data.py)."""
from sqlalchemy import select
from sqlalchemy.orm import Session

from app.jobs.lifecycle import JobStatus
from app.ml.errors import SpecError
from app.ml.spec import JobSpec
from app.ml.warm_start import SourceJob
from app.models import Job
from app.storage import get_store, weights_key

SUCCEEDED = JobStatus.SUCCEEDED


def find(*, db_session: Session, tenant_id: str, job_id: str, field: str) -> SourceJob:
    """The tenant's succeeded job with stored weights; a SpecError naming ``field`` otherwise."""
    job = db_session.scalars(select(Job).where(Job.tenant_id == tenant_id, Job.id == job_id)).first()
    if job is None:
        raise SpecError(field, f"no job {job_id!r}")
    if job.status != SUCCEEDED:
        raise SpecError(field, f"{job_id} is {job.status}; only a succeeded job's weights can be used")
    if not get_store().exists(job.weights_path or weights_key(job.id)):
        raise SpecError(field, f"{job_id}'s weights are no longer stored")
    spec = JobSpec.model_validate(job.spec)
    return SourceJob(job_id=job.id, model=spec.model, input_shape=tuple(job.input_shape), loss_type=spec.loss.type)


def resolve(*, db_session: Session, tenant_id: str, spec: JobSpec) -> dict[str, SourceJob]:
    """{"init": ..., "distill": ...}: the source jobs the spec names."""
    found = {}
    if spec.init is not None:
        found["init"] = find(db_session=db_session, tenant_id=tenant_id, job_id=spec.init.from_job,
                             field="init.from_job")
    if spec.distill is not None:
        found["distill"] = find(db_session=db_session, tenant_id=tenant_id, job_id=spec.distill.teacher,
                                field="distill.teacher")
    return found
