"""/v1/studies: create, list, read, curves, live events, cancel, delete."""
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Header, Query, Response
from sse_starlette import EventSourceResponse

from app.config import get_settings
from app.db import SQL_BIGINT_MAX
from app.deps import CurrentTenant, SessionDep
from app.jobs.router import event_start
from app.labels import LabelQuery, NamePrefixQuery, NameQuery, parse_filters
from app.openapi import errors
from app.studies import repository, service, stream
from app.studies.lifecycle import StudyStatus
from app.studies.schemas import Curves, StudyCreate, StudyPage, StudyRead

router = APIRouter(prefix="/v1/studies", tags=["studies"])


@router.post("", status_code=201, response_model=StudyRead, responses={
    200: {"model": StudyRead, "description": "the study this Idempotency-Key created before"},
    **errors(why={409: "the Idempotency-Key was used for a different study"})})
def create_study(request: StudyCreate, db: SessionDep, tenant: CurrentTenant, response: Response,
                 idempotency_key: Annotated[str | None, Header(min_length=1, max_length=200)] = None):
    """Checks every member of the study (a bad one is a 422 naming it; nothing is stored) and starts it."""
    study, created = service.create(db_session=db, tenant_id=tenant, request=request, settings=get_settings(),
                                    idempotency_key=idempotency_key)
    if not created:
        response.status_code = 200
    return study


@router.get("", response_model=StudyPage)
def list_studies(db: SessionDep, tenant: CurrentTenant, status: StudyStatus | None = None,
                 label: LabelQuery = None, name: NameQuery = None, name_prefix: NamePrefixQuery = None,
                 limit: Annotated[int, Query(ge=1, le=500)] = 50,
                 offset: Annotated[int, Query(ge=0, le=SQL_BIGINT_MAX)] = 0):
    """The studies, newest first; filters combine with AND (every ``label`` given must match)."""
    rows, total = repository.list_page(db_session=db, tenant_id=tenant, status=status, limit=limit, offset=offset,
                                       labels=parse_filters(label), name=name, name_prefix=name_prefix)
    return StudyPage(items=service.summaries(db_session=db, studies=rows), total=total, limit=limit, offset=offset)


@router.get("/{study_id}", response_model=StudyRead, responses=errors(404))
def get_study(study_id: str, db: SessionDep, tenant: CurrentTenant):
    """The study, its members and its leaderboard (per variant, over its seeds)."""
    return service.read(db_session=db, study=service.get_or_404(db_session=db, tenant_id=tenant, study_id=study_id))


@router.get("/{study_id}/curves", response_model=Curves, responses=errors(404))
def get_curves(study_id: str, db: SessionDep, tenant: CurrentTenant,
               metric: Annotated[str | None, Query(pattern=r"^[a-z_]{1,40}$",
                                                   description="an epoch metric; default: the objective's")] = None,
               x: Literal["epoch", "step", "seconds"] = "epoch", members: bool = False):
    """Per variant, the metric's mean, spread and range at each epoch; with members=true each member's curve."""
    study = service.get_or_404(db_session=db, tenant_id=tenant, study_id=study_id)
    return service.study_curves(db_session=db, study=study, metric=metric, x=x, per_member=members)


EVENTS_DOC = {200: {"content": {"text/event-stream": {}}, "description": (
    "Server-Sent Events: `leaderboard` first (as it is now, no id), then `member` (a member's status "
    "change: job_id, member, variant, status, reason) and `status` (the study's), each with an `id` "
    "increasing by one; a new `leaderboard` after each member's end; then one `end` event with the "
    "study's final status and leaderboard. Reconnect with `Last-Event-ID` (or `?after=`).")}}


@router.get("/{study_id}/events", response_class=EventSourceResponse, responses={**EVENTS_DOC, **errors(404)})
def study_events(study_id: str, db: SessionDep, tenant: CurrentTenant, start: Annotated[int, Depends(event_start)]):
    """Streams the study's member status changes and leaderboard updates live (SSE)."""
    service.get_or_404(db_session=db, tenant_id=tenant, study_id=study_id)
    return EventSourceResponse(stream.watch(study_id, start), ping=get_settings().stream_ping_seconds)


@router.post("/{study_id}/cancel", response_model=StudyRead,
             responses=errors(404, why={409: "the study has already ended"}))
def cancel_study(study_id: str, db: SessionDep, tenant: CurrentTenant):
    """Cancels the study: waiting members at once, running ones at their next step."""
    study = service.get_or_404(db_session=db, tenant_id=tenant, study_id=study_id)
    return service.cancel(db_session=db, study=study)


@router.delete("/{study_id}", status_code=204, responses=errors(404, why={409: "the study is still running"}))
def delete_study(study_id: str, db: SessionDep, tenant: CurrentTenant):
    """Deletes an ended study, its member jobs, their histories and their stored weights."""
    service.remove(db_session=db, study=service.get_or_404(db_session=db, tenant_id=tenant, study_id=study_id))
    return Response(status_code=204)
