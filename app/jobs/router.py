import logging
from typing import Annotated

from fastapi import APIRouter, Header, Query
from fastapi.responses import FileResponse, JSONResponse

from app.config import get_settings
from app.deps import CurrentTenant, SessionDep
from app.errors import ApiError
from app.jobs import repository, service
from app.jobs.schemas import (EpochPoint, JobCreated, JobPage, JobRead, JobStatus, MetricsRead,
                              PlanRead, SpecRead, StepPoint)
from app.ml.spec import JobSpec
from app.queue import enqueue_training
from app.storage import get_store

log = logging.getLogger(__name__)
router = APIRouter(prefix="/v1/jobs", tags=["jobs"])


@router.post("", status_code=202, response_model=JobCreated | PlanRead,
             responses={200: {"model": PlanRead, "description": "dry run: the plan, nothing queued"}})
def submit_job(spec: JobSpec, db: SessionDep, tenant: CurrentTenant,
               dry_run: bool = False,
               idempotency_key: Annotated[str | None, Header(max_length=200)] = None):
    """Checks a job spec against its dataset and queues it (or, with dry_run, only checks it)."""
    settings = get_settings()
    if dry_run:
        job_plan, _ = service.plan(db_session=db, tenant_id=tenant, spec=spec, settings=settings)
        return JSONResponse(PlanRead.model_validate(job_plan).model_dump(mode="json"), status_code=200)
    job, job_plan, created = service.create(db_session=db, tenant_id=tenant, spec=spec,
                                            settings=settings, idempotency_key=idempotency_key)
    db.commit()
    if created:
        try:
            enqueue_training(job.id)
        except Exception:
            # The job is stored; the worker's startup sweep re-enqueues queued jobs.
            log.exception("could not enqueue job %s; it stays queued", job.id)
    return service.created_read(job, job_plan)


@router.get("", response_model=JobPage)
def list_jobs(db: SessionDep, tenant: CurrentTenant, status: JobStatus | None = None,
              limit: Annotated[int, Query(ge=1, le=500)] = 50,
              offset: Annotated[int, Query(ge=0)] = 0):
    rows, total = repository.list_page(db_session=db, tenant_id=tenant, status=status,
                                       limit=limit, offset=offset)
    return JobPage(items=[service.to_read(j) for j in rows], total=total, limit=limit, offset=offset)


def get_or_404(db, tenant: str, job_id: str):
    job = repository.get(db_session=db, tenant_id=tenant, job_id=job_id)
    if job is None:
        raise ApiError(404, f"no job {job_id!r}")
    return job


@router.get("/{job_id}", response_model=JobRead)
def get_job(job_id: str, db: SessionDep, tenant: CurrentTenant):
    return service.to_read(get_or_404(db, tenant, job_id))


@router.get("/{job_id}/metrics", response_model=MetricsRead)
def get_metrics(job_id: str, db: SessionDep, tenant: CurrentTenant,
                after_step: Annotated[int, Query(ge=-1)] = -1,
                limit: Annotated[int, Query(ge=2, le=100_000)] = 10_000):
    """The loss history after ``after_step``: epoch points and logged steps, in step order."""
    get_or_404(db, tenant, job_id)
    rows = repository.metrics_after(db_session=db, job_id=job_id, after_step=after_step, limit=limit)
    if len(rows) == limit and rows[0].step != rows[-1].step:
        # Never end a page inside a step (a step and its epoch point share one number),
        # or the next page's after_step would skip the rest of it.
        rows = [m for m in rows if m.step != rows[-1].step]
    epochs = [EpochPoint(epoch=m.epoch, step=m.step, **m.values) for m in rows if m.kind == "epoch"]
    steps = [StepPoint(epoch=m.epoch, step=m.step, **m.values) for m in rows if m.kind == "step"]
    last = rows[-1].step if rows else after_step
    return MetricsRead(job_id=job_id, epochs=epochs, steps=steps, last_step=last)


@router.get("/{job_id}/spec", response_model=SpecRead)
def get_spec(job_id: str, db: SessionDep, tenant: CurrentTenant):
    job = get_or_404(db, tenant, job_id)
    return SpecRead(job_id=job.id, spec=job.spec, input_shape=job.input_shape)


@router.get("/{job_id}/weights", response_class=FileResponse,
            responses={200: {"content": {"application/octet-stream": {}},
                             "description": "the trained state_dict as safetensors"}})
def get_weights(job_id: str, db: SessionDep, tenant: CurrentTenant):
    job = get_or_404(db, tenant, job_id)
    if job.status != "succeeded" or not job.weights_path:
        raise ApiError(409, f"job is {job.status}; weights are available once it has succeeded")
    path = get_store().path(job.weights_path)
    return FileResponse(path, media_type="application/octet-stream",
                        filename=f"{job.id}.safetensors")
