from functools import lru_cache
from typing import Annotated, Literal

import anyio
from fastapi import APIRouter, Header, Query, Request
from fastapi.responses import FileResponse, JSONResponse, Response
from sse_starlette import EventSourceResponse
from starlette.concurrency import run_in_threadpool

from app.config import get_settings
from app.db import get_read_engine, get_session_factory
from app.deps import CurrentTenant, RequestTenant, SessionDep, current_tenant
from app.errors import ApiError
from app.jobs import export, lifecycle, predict, repository, sending, service, stream
from app.jobs.lifecycle import JobStatus
from app.jobs.reads import read_limiter
from app.jobs.preprocessing import read as read_preprocessing
from app.jobs.schemas import (EpochPoint, JobCreated, JobPage, JobRead, MetricsRead,
                              PlanRead, PredictRead, PredictRequest, SpecRead, StepPoint)
from app.ml.spec import JobSpec
from app.storage import get_store
from app.workers import routing

router = APIRouter(prefix="/v1/jobs", tags=["jobs"])


@router.post("", status_code=202, response_model=JobCreated | PlanRead,
             responses={200: {"model": PlanRead, "description": "dry run: the plan, nothing queued"}})
async def submit_job(spec: JobSpec, tenant: RequestTenant, dry_run: bool = False,
                     idempotency_key: Annotated[str | None, Header(max_length=200)] = None):
    """Checks a job spec against its dataset and queues it (or, with dry_run, only checks it)."""
    # The key is checked on the event loop (its tenant is usually in memory), then one
    # trip to the thread pool does the rest: each trip is a wait for a thread, and the
    # time to a running job counts every one of them.
    return await run_in_threadpool(_submit, spec, tenant, dry_run, idempotency_key)


def _submit(spec: JobSpec, tenant: str, dry_run: bool, idempotency_key: str | None):
    settings = get_settings()
    with get_session_factory()() as db:
        if dry_run:
            job_plan, _ = service.plan(db_session=db, tenant_id=tenant, spec=spec, settings=settings)
            return JSONResponse(PlanRead.model_validate(job_plan).model_dump(mode="json"), status_code=200)
        job, job_plan, created = service.create(db_session=db, tenant_id=tenant, spec=spec,
                                                settings=settings, idempotency_key=idempotency_key)
        db.commit()
        if created and sending.send([(job.id, job.queue)]):
            # Not published: stored all the same, and a worker's reaper sends it once the broker is back.
            return service.created_read(job, job_plan, waiting_reason=routing.UNSENT_REASON)
        return service.created_read(job, job_plan,
                                    waiting_reason=routing.waiting_reason(db_session=db, job=job))


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
async def get_job(request: Request, job_id: str, tenant: RequestTenant):
    # The route clients poll, kept cheap. The job is read together with the jobs other
    # requests are reading, in one query (app/jobs/reads.py: on PostgreSQL by the event
    # loop, on SQLite in one thread). A waiting job, a 404 or a database error takes one
    # trip to the thread pool with one pooled connection in autocommit (SessionDep +
    # CurrentTenant would cost three more trips). The body is serialized once: returning
    # the model would have FastAPI validate it again.
    body = await request.app.state.job_reader.read(tenant, job_id)
    if body is None:  # waiting (its reason takes more queries), not found, or a database error
        body = await anyio.to_thread.run_sync(_read_job, tenant, job_id, limiter=read_limiter())
    return Response(body, media_type="application/json")


def _read_job(tenant: str, job_id: str) -> str:
    with get_read_engine().connect() as conn:
        job = service.read(conn=conn, tenant_id=tenant, job_id=job_id)
    if job is None:
        raise ApiError(404, f"no job {job_id!r}")
    return job.model_dump_json()


@router.post("/{job_id}/cancel", response_model=JobRead,
             responses={202: {"model": JobRead, "description": "running: it stops at its next step"},
                        409: {"description": "the job has already ended"}})
def cancel_job(job_id: str, db: SessionDep, tenant: CurrentTenant):
    """Cancels a job: a waiting one at once (200), a running one at its next step (202)."""
    job = lifecycle.cancel(db_session=db, job=get_or_404(db, tenant, job_id))
    db.commit()
    body = service.to_read(job).model_dump(mode="json")
    return JSONResponse(body, status_code=200 if job.status == JobStatus.CANCELLED else 202)


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
    return SpecRead(job_id=job.id, spec=job.spec, input_shape=job.input_shape,
                    preprocessing=read_preprocessing(job.id))


EVENTS_DOC = {200: {"content": {"text/event-stream": {}}, "description": (
    "Server-Sent Events: `status` (queued, running with its attempt, the final status), "
    "`step` and `epoch` (metric points), each with an `id` increasing by one; then one "
    "`end` event with the final status and error, and the stream closes. Reconnect with "
    "`Last-Event-ID` (or `?after=`) to get exactly the events missed.")}}


@router.get("/{job_id}/events", response_class=EventSourceResponse, responses=EVENTS_DOC)
async def job_events(job_id: str, authorization: Annotated[str | None, Header()] = None,
                     last_event_id: Annotated[str | None, Header()] = None,
                     after: Annotated[int | None, Query(ge=0, description="as Last-Event-ID")] = None):
    """Streams the job's status changes and metric points live (SSE), from the start or a resume point."""
    start = after if after is not None else _event_id(last_event_id)
    await run_in_threadpool(_check_access, authorization, job_id)
    return EventSourceResponse(stream.watch(job_id, start),
                               ping=get_settings().stream_ping_seconds)


def _check_access(authorization: str | None, job_id: str) -> None:
    """Authenticates and finds the job in one thread with one short-lived session.

    Not SessionDep + CurrentTenant: those hold a pooled connection from the dependency's
    thread to the route's thread, and a burst of watchers (100 reconnecting at once) can
    fill the thread pool with requests waiting for connections held by requests waiting
    for threads, a 30 s stall. The stream itself holds no connection.
    """
    with get_session_factory()() as db:
        get_or_404(db, current_tenant(db, authorization), job_id)


def _event_id(header: str | None) -> int:
    if header is None or not header.strip():
        return 0
    if not header.strip().isdigit():
        raise ApiError(422, f"Last-Event-ID must be an event id (a non-negative integer), "
                            f"got {header!r}", "Last-Event-ID")
    return int(header)


@lru_cache
def _models() -> predict.ModelCache:
    return predict.ModelCache(get_settings().predict_cache_size)


@router.post("/{job_id}/predict", response_model=PredictRead)
def predict_job(job_id: str, body: PredictRequest, db: SessionDep, tenant: CurrentTenant):
    """Runs the trained model on ``inputs``; classification jobs also get probabilities and labels."""
    job = get_or_404(db, tenant, job_id)
    predict.require_trained(job)
    x = predict.as_batch(body.inputs, job.input_shape, get_settings().max_predict_rows)
    classes = service.classes_of(db_session=db, job=job)
    result = predict.predict(_models().get(job), x, job.spec["loss"]["type"], classes)
    return PredictRead(job_id=job.id, **result)


WEIGHTS_DOC = {200: {"content": {"application/octet-stream": {}}, "description": (
    "the trained state_dict as safetensors, or with format=onnx an ONNX model (dynamic "
    "batch dimension) checked against PyTorch; header X-Trainyard-Max-Abs-Diff reports "
    "the largest difference seen")}}


@router.get("/{job_id}/weights", response_class=FileResponse, responses=WEIGHTS_DOC)
def get_weights(job_id: str, db: SessionDep, tenant: CurrentTenant,
                format: Literal["safetensors", "onnx"] = "safetensors"):
    job = get_or_404(db, tenant, job_id)
    if job.status != JobStatus.SUCCEEDED or not job.weights_path:
        raise ApiError(409, f"job is {job.status}; weights are available once it has succeeded")
    if format == "onnx":
        # A model of its own: tracing must not share a module with concurrent predictions.
        key, diff = export.cached_or_export(get_store(), job.id, lambda: predict.serving_model(job),
                                            job.input_shape, service.sample_rows(db_session=db, job=job))
        return FileResponse(get_store().path(key), media_type="application/octet-stream",
                            filename=f"{job.id}.onnx",
                            headers={"X-Trainyard-Max-Abs-Diff": f"{diff:.3e}"})
    path = get_store().path(job.weights_path)
    return FileResponse(path, media_type="application/octet-stream",
                        filename=f"{job.id}.safetensors")
