"""Study creation, reads, cancel and delete. Services flush; the request's unit of work commits."""
import hashlib
import json
import math

from sqlalchemy import delete
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from app.config import Settings
from app.db import after_commit, complete
from app.errors import ApiError
from app.jobs import lifecycle as jobs_lifecycle
from app.jobs import sending
from app.jobs.lifecycle import ACTIVE
from app.models import Job, JobEvent, Metric, Study, StudyEvent
from app.models.base import new_id
from app.quotas import service as quotas
from app.storage import get_store, job_folder
from app.studies import checks, conductor, lifecycle, packing, repository
from app.studies.curves import Curves, curves
from app.studies.history import Objective as BoardObjective
from app.studies.leaderboard import Leaderboard, leaderboard
from app.studies.lifecycle import StudyStatus
from app.studies.members import Member, expand
from app.studies.schemas import MemberRead, StudyCreate, StudyRead, StudySummary
from app.studies.search import corners


def planned_members(request: StudyCreate, settings: Settings) -> int:
    """How many members the study runs; a 422 naming the field when it is over MAX_STUDY_MEMBERS."""
    limit = settings.max_study_members
    if request.search is not None:
        if request.search.trials > limit:
            raise ApiError(422, f"{request.search.trials} trials is over this server's limit of {limit} "
                                "members per study (MAX_STUDY_MEMBERS)", "search.trials")
        return request.search.trials
    n = max(len(request.variants), 1) * math.prod(len(v) for v in request.grid.values()) * max(len(request.seeds), 1)
    if n > limit:
        field = "grid" if request.grid else "variants" if request.variants else "seeds"
        raise ApiError(422, f"the study has {n} members (variants x grid points x seeds), over this server's "
                            f"limit of {limit} (MAX_STUDY_MEMBERS)", field)
    return n


def _members(request: StudyCreate) -> list[Member]:
    """The members to store now (a search: none yet, but its space's corners are checked)."""
    if request.search is not None:
        return [conductor.search_member(i, params, request) for i, params in enumerate(corners(request.search.space))]
    return expand(variants=[(v.label, v.set) for v in request.variants], grid=request.grid, seeds=request.seeds,
                  base_seed=conductor.trial_seed(request))


def create(*, db_session: Session, tenant_id: str, request: StudyCreate, settings: Settings,
           idempotency_key: str | None = None) -> tuple[StudyRead, bool]:
    """Checks every member, stores the study and its members (held), and releases the first ones.

    Returns (the study, created); created is False when the Idempotency-Key made it before.
    """
    # Without labels the body (and so its digest) is what it was before studies had them.
    body = request.model_dump(mode="json", by_alias=True, exclude=None if request.labels else {"labels"})
    digest = hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()
    if idempotency_key and (found := _replay(db_session, tenant_id, idempotency_key, digest)) is not None:
        return found, False
    planned = planned_members(request, settings)
    checked = checks.check(db_session=db_session, tenant_id=tenant_id, base=request.base,
                           members=_members(request), objective=request.objective, settings=settings)
    # In the transaction that inserts the members (app/quotas/service.py): every planned member
    # (a search's trials too) against the members of the tenant's studies that have not ended.
    quotas.check_new_jobs(db_session=db_session, tenant_id=tenant_id, members=planned)
    study = Study(id=new_id("study"), tenant_id=tenant_id, name=request.name, labels=request.labels, spec=body,
                  kind="search" if request.search else "variants", planned=planned, refused=0,
                  idempotency_key=idempotency_key, request_hash=digest)
    try:
        with db_session.begin_nested():
            lifecycle.create(db_session=db_session, study=study)
    except IntegrityError:  # a concurrent retry with the same key stored it first
        found = _replay(db_session, tenant_id, idempotency_key, digest) if idempotency_key else None
        if found is None:
            raise
        return found, False
    if request.search is None:
        for c in checked:
            conductor.add_member(db_session=db_session, study=study, checked=c)
    db_session.flush()
    sends = conductor.advance(db_session=db_session, study_id=study.id)
    after_commit(db_session, lambda: sending.send(sends))
    complete(db_session)
    return read(db_session=db_session, study=study), True


def _replay(db_session: Session, tenant_id: str, key: str, digest: str) -> StudyRead | None:
    study = repository.get_by_idempotency_key(db_session=db_session, tenant_id=tenant_id, key=key)
    if study is None:
        return None
    if study.request_hash != digest:
        raise ApiError(409, "this Idempotency-Key was used for a different study; use a new key for a new study",
                       "Idempotency-Key")
    return read(db_session=db_session, study=study)


def get_or_404(*, db_session: Session, tenant_id: str, study_id: str) -> Study:
    study = repository.get(db_session=db_session, tenant_id=tenant_id, study_id=study_id)
    if study is None:
        raise ApiError(404, f"no study {study_id!r}")
    return study


def objective_of(study: Study) -> BoardObjective:
    o = StudyCreate.model_validate(study.spec).objective
    return BoardObjective(metric=o.metric, mode=o.mode, target=o.target)


def read(*, db_session: Session, study: Study) -> StudyRead:
    """The study with its members and its leaderboard, computed from the members' stored histories."""
    db_session.refresh(study)
    request = StudyCreate.model_validate(study.spec)
    jobs = repository.members(db_session=db_session, study_id=study.id)
    board = leaderboard(repository.histories(db_session=db_session, jobs=jobs), objective_of(study))
    counts: dict[str, int] = {}
    for j in jobs:
        counts[j.status] = counts.get(j.status, 0) + 1
    return StudyRead(
        id=study.id, name=study.name, labels=study.labels or {}, status=study.status, kind=study.kind, objective=request.objective,
        planned=study.planned, parallel=conductor.parallel(db_session=db_session, request=request), counts=counts,
        members=[MemberRead(job_id=j.id, member=j.member, variant=j.variant, seed=j.spec["training"]["seed"],
                            status=j.status, params=j.params or {}, error=j.error, pack_id=j.pack_id,
                            packed_with=j.packed_with, unpackable=packing.refusal_of(j.spec)) for j in jobs],
        leaderboard=board, created_at=study.created_at, finished_at=study.finished_at)


def board(*, db_session: Session, study: Study) -> Leaderboard:
    jobs = repository.members(db_session=db_session, study_id=study.id)
    return leaderboard(repository.histories(db_session=db_session, jobs=jobs), objective_of(study))


def study_curves(*, db_session: Session, study: Study, metric: str | None, x: str, per_member: bool) -> Curves:
    jobs = repository.members(db_session=db_session, study_id=study.id)
    return curves(repository.histories(db_session=db_session, jobs=jobs),
                  metric=metric or objective_of(study).metric, x=x, per_member=per_member)


def summaries(*, db_session: Session, studies: list[Study]) -> list[StudySummary]:
    counts = repository.counts(db_session=db_session, study_ids=[s.id for s in studies])
    return [StudySummary(id=s.id, name=s.name, labels=s.labels or {}, status=s.status, kind=s.kind, planned=s.planned,
                         counts=counts[s.id], created_at=s.created_at, finished_at=s.finished_at) for s in studies]


def cancel(*, db_session: Session, study: Study) -> StudyRead:
    """Ends the study cancelled: its waiting members at once, its running ones at their next step."""
    lifecycle.cancel(db_session=db_session, study=study)
    for job in repository.members(db_session=db_session, study_id=study.id):
        if job.status in ACTIVE:
            try:
                jobs_lifecycle.cancel(db_session=db_session, job=job)
            except ApiError:  # it ended meanwhile
                pass
    return read(db_session=db_session, study=study)


def remove(*, db_session: Session, study: Study) -> None:
    """Deletes an ended study with its members, their histories and stored artifacts."""
    if study.status == StudyStatus.RUNNING:
        raise ApiError(409, "the study is running; cancel it first (POST /v1/studies/{id}/cancel)")
    jobs = repository.members(db_session=db_session, study_id=study.id)
    if any(j.status in ACTIVE for j in jobs):
        raise ApiError(409, "some of the study's members are still stopping; try again in a few seconds")
    job_ids = [j.id for j in jobs]
    for table in (Metric, JobEvent):
        db_session.execute(delete(table).where(table.job_id.in_(job_ids)))
    db_session.execute(delete(Job).where(Job.id.in_(job_ids)))
    db_session.execute(delete(StudyEvent).where(StudyEvent.study_id == study.id))
    db_session.execute(delete(Study).where(Study.id == study.id))
    store = get_store()
    after_commit(db_session, lambda: [store.delete_folder(job_folder(j)) for j in job_ids])
