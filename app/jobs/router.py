"""/v1/jobs: submit, list, read, delete, cancel, metrics, spec, live events, predict, weights."""
from functools import lru_cache
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Header, Query, Response
from fastapi.responses import FileResponse
from sse_starlette import EventSourceResponse

from app.config import get_settings
from app.db import SQL_BIGINT_MAX, SQL_INT_MAX
from app.deps import CurrentTenant, SessionDep
from app.errors import ApiError
from app.jobs import export, lifecycle, predict, quantize, repository, service, stream
from app.jobs.lifecycle import JobStatus
from app.jobs.reads import SharedReads, shared_reads
from app.jobs.schemas import (JobCreate, JobCreated, JobPage, JobRead, MetricsRead, PlanRead, PredictRead,
                              PredictRequest, SpecRead)
from app.labels import LabelQuery, NamePrefixQuery, NameQuery, parse_filters
from app.ml.loss_activation import feeding_activation
from app.ml.spec import JobSpec
from app.openapi import errors
from app.quotas import service as quotas
from app.storage import get_store

router = APIRouter(prefix="/v1/jobs", tags=["jobs"])
SharedReadsDep = Annotated[SharedReads, Depends(shared_reads)]


@router.post("", status_code=202, response_model=JobCreated | PlanRead,
             responses={200: {"model": PlanRead, "description": "dry run: the plan, nothing queued"},
                        **errors(why={409: "the Idempotency-Key was used for a different job spec"})})
def submit_job(body: JobCreate, db: SessionDep, tenant: CurrentTenant, response: Response,
               dry_run: bool = False,
               idempotency_key: Annotated[str | None, Header(min_length=1, max_length=200)] = None):
    """Checks a job spec against its dataset and queues it (or, with dry_run, only checks it)."""
    if dry_run:
        job_plan, _ = service.plan(db_session=db, tenant_id=tenant, spec=body.spec(), settings=get_settings())
        response.status_code = 200
        return PlanRead.model_validate(job_plan)
    return service.submit(db_session=db, tenant_id=tenant, spec=body.spec(), settings=get_settings(),
                          idempotency_key=idempotency_key, name=body.name, labels=body.labels)


@router.get("", response_model=JobPage)
def list_jobs(db: SessionDep, tenant: CurrentTenant, status: JobStatus | None = None,
              study_id: Annotated[str | None, Query(max_length=40, description="a study's members only")] = None,
              label: LabelQuery = None, name: NameQuery = None, name_prefix: NamePrefixQuery = None,
              limit: Annotated[int, Query(ge=1, le=500)] = 50,
              offset: Annotated[int, Query(ge=0, le=SQL_BIGINT_MAX)] = 0):
    """The jobs, newest first; filters combine with AND (every ``label`` given must match)."""
    rows, total = repository.list_page(db_session=db, tenant_id=tenant, status=status,
                                       limit=limit, offset=offset, study_id=study_id,
                                       labels=parse_filters(label), name=name, name_prefix=name_prefix)
    return JobPage(items=[service.to_read(j) for j in rows], total=total, limit=limit, offset=offset)


@router.get("/{job_id}", response_model=JobRead, responses=errors(404))
async def get_job(job_id: str, tenant: CurrentTenant, reads: SharedReadsDep):
    """The job, its progress and attempt history, and while it waits, why."""
    # The route clients poll: the one fast path, polls arriving together share a query
    # (app/jobs/reads.py says what it buys).
    body = await reads.read(tenant, job_id)
    if body is None:
        raise ApiError(404, f"no job {job_id!r}")
    return Response(body, media_type="application/json")


@router.delete("/{job_id}", status_code=204, responses=errors(404, why={
    409: "the job may still train (cancel it first), or it is a study's member (delete the study)"}))
def delete_job(job_id: str, db: SessionDep, tenant: CurrentTenant):
    """Deletes an ended job with its metrics, events and stored files (weights, checkpoint, ONNX)."""
    service.remove(db_session=db, job=service.get_or_404(db_session=db, tenant_id=tenant, job_id=job_id))
    return Response(status_code=204)


@router.post("/{job_id}/cancel", response_model=JobRead,
             responses={202: {"model": JobRead, "description": "running: it stops at its next step"},
                        **errors(404, why={409: "the job has already ended"})})
def cancel_job(job_id: str, db: SessionDep, tenant: CurrentTenant, response: Response):
    """Cancels a job: a waiting one at once (200), a running one at its next step (202)."""
    job = lifecycle.cancel(db_session=db, job=service.get_or_404(db_session=db, tenant_id=tenant, job_id=job_id))
    response.status_code = 200 if job.status == JobStatus.CANCELLED else 202
    return service.to_read(job)


@router.get("/{job_id}/metrics", response_model=MetricsRead, responses=errors(404))
def get_metrics(job_id: str, db: SessionDep, tenant: CurrentTenant,
                after_step: Annotated[int, Query(ge=-1, le=SQL_INT_MAX)] = -1,
                limit: Annotated[int, Query(ge=2, le=100_000)] = 10_000,
                max_points: Annotated[int | None, Query(ge=4, le=100_000, description=(
                    "Cut each kind (epochs, steps) to at most this many points, keeping each bucket's "
                    "first point and its lowest and highest train_loss, so spikes survive; the whole "
                    "history after after_step is read and limit does not apply."))] = None):
    """The loss history after ``after_step``: epoch points and logged steps, in step order."""
    service.get_or_404(db_session=db, tenant_id=tenant, job_id=job_id)
    return service.metrics_page(db_session=db, job_id=job_id, after_step=after_step, limit=limit,
                                max_points=max_points)


@router.get("/{job_id}/spec", response_model=SpecRead, responses=errors(404))
def get_spec(job_id: str, db: SessionDep, tenant: CurrentTenant):
    return service.spec_of(service.get_or_404(db_session=db, tenant_id=tenant, job_id=job_id))


EVENTS_DOC = {200: {"content": {"text/event-stream": {}}, "description": (
    "Server-Sent Events: `status` (queued, running with its attempt, the final status), "
    "`step` and `epoch` (metric points), each with an `id` increasing by one; then one "
    "`end` event with the final status and error, and the stream closes. Reconnect with "
    "`Last-Event-ID` (or `?after=`) to get exactly the events missed.")}}


async def event_start(last_event_id: Annotated[str | None, Header()] = None,
                      after: Annotated[int | None, Query(ge=0, le=SQL_INT_MAX,
                                                         description="as Last-Event-ID")] = None) -> int:
    """The id of the last event the client has: ``?after=``, else its Last-Event-ID header, else 0.

    An id this API never sent (over 2^31 - 1, its column's limit) is a 422, as ``?after=`` is: streaming from
    "now" instead would silently drop the events the client has not seen."""
    if after is not None:
        return after
    if last_event_id is None or not last_event_id.strip():
        return 0
    value = last_event_id.strip()
    if not (value.isascii() and value.isdigit()) or int(value) > SQL_INT_MAX:
        raise ApiError(422, f"Last-Event-ID must be an event id (a non-negative integer up to "
                            f"{SQL_INT_MAX}), got {last_event_id[:40]!r}", "Last-Event-ID")
    return int(value)


@router.get("/{job_id}/events", response_class=EventSourceResponse, responses={**EVENTS_DOC, **errors(404)})
def job_events(job_id: str, db: SessionDep, tenant: CurrentTenant,
               start: Annotated[int, Depends(event_start)]):
    """Streams the job's status changes and metric points live (SSE), from the start or a resume point."""
    service.get_or_404(db_session=db, tenant_id=tenant, job_id=job_id)
    # The stream holds no session: the request's closes as this returns, the stream's own
    # reads (app/jobs/stream.py) take a connection each for a moment.
    return EventSourceResponse(stream.watch(job_id, start), ping=get_settings().stream_ping_seconds)


@lru_cache
def _models() -> predict.ModelCache:
    return predict.ModelCache(get_settings().predict_cache_size)


@router.post("/{job_id}/predict", response_model=PredictRead, responses=errors(
    404, why={409: "the job has not succeeded (yet)", 413: "more rows than MAX_PREDICT_ROWS"}))
def predict_job(job_id: str, body: PredictRequest, db: SessionDep, tenant: CurrentTenant):
    """Runs the trained model on ``inputs``; classification jobs also get probabilities and labels."""
    job = service.get_or_404(db_session=db, tenant_id=tenant, job_id=job_id)
    predict.require_trained(job)
    x = predict.as_batch(body.inputs, job.input_shape, get_settings().max_predict_rows)
    classes = service.classes_of(db_session=db, job=job)
    found = feeding_activation(JobSpec.model_validate(job.spec).model.layers)
    result = predict.predict(_models().get(job), x, job.spec["loss"]["type"], classes,
                             activation=found[1] if found else None)
    return PredictRead(job_id=job.id, **result)


WEIGHTS_DOC = {200: {"content": {"application/octet-stream": {}}, "description": (
    "the trained state_dict as safetensors, or with format=onnx an ONNX model (dynamic "
    "batch dimension) checked against PyTorch; header X-Trainyard-Max-Abs-Diff reports "
    "the largest difference seen. format=onnx-int8: that model dynamically quantized to int8, "
    "measured against it on the job's validation rows (training rows when it held out none): "
    "X-Trainyard-Int8-Rows, X-Trainyard-Accuracy-Fp32/-Int8 (classification), "
    "X-Trainyard-Mse-Fp32/-Int8/-Change (regression), X-Trainyard-Int8-Max-Abs-Diff, "
    "X-Trainyard-Quantized-Nodes, X-Trainyard-Float-Nodes, X-Trainyard-Size-Ratio")}}


@router.get("/{job_id}/weights", response_class=FileResponse, responses={
    **WEIGHTS_DOC, **errors(404, why={409: "the job has not succeeded (yet)",
                                      422: "invalid parameters, or the model cannot be exported to ONNX"})})
def get_weights(job_id: str, db: SessionDep, tenant: CurrentTenant,
                format: Literal["safetensors", "onnx", "onnx-int8"] = "safetensors"):
    job = service.get_or_404(db_session=db, tenant_id=tenant, job_id=job_id)
    if job.status != JobStatus.SUCCEEDED or not job.weights_path:
        raise ApiError(409, f"job is {job.status}; weights are available once it has succeeded")
    if format in ("onnx", "onnx-int8"):
        # A model of its own: tracing must not share a module with concurrent predictions.
        key, diff = export.cached_or_export(get_store(), job.id, lambda: predict.serving_model(job),
                                            job.input_shape, service.sample_rows(db_session=db, job=job))
        int8 = _int8_weights(db, job, key) if format == "onnx-int8" else None
        quotas.record_artifacts(db_session=db, job_id=job.id)  # the exports count as stored bytes
        if int8 is not None:
            return int8
        return FileResponse(get_store().local_path(key), media_type="application/octet-stream",
                            filename=f"{job.id}.onnx",
                            headers={"X-Trainyard-Max-Abs-Diff": f"{diff:.3e}"})
    path = get_store().local_path(job.weights_path)
    return FileResponse(path, media_type="application/octet-stream",
                        filename=f"{job.id}.safetensors")


def _int8_weights(db, job, fp32_key: str) -> FileResponse:
    """The int8 file quantized from the checked fp32 export, with what it costs in headers."""
    def rows() -> quantize.Rows:
        found = service.evaluation_rows(db_session=db, job=job, rows=quantize.MAX_ROWS)
        if found is None:  # the dataset is gone: the fp32 check's seeded rows, no targets
            return quantize.Rows("random", export.check_batches(None, job.input_shape)[-1], None)
        return quantize.Rows(*found)

    key, report = quantize.cached_or_quantize(get_store(), job.id, fp32_key, rows, job.spec["loss"]["type"])
    return FileResponse(get_store().local_path(key), media_type="application/octet-stream",
                        filename=f"{job.id}.int8.onnx", headers=quantize.headers(report))
