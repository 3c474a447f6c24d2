"""Whether a search's pruner stops a member now: asked by the member's own worker as its epochs arrive."""
import math

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.models import Job, Metric, Study
from app.studies import conductor, repository, search
from app.studies.schemas import StudyCreate


def applies(*, db_session: Session, study_id: str | None) -> bool:
    """Whether the study's members are pruned at all (a search with a pruner)."""
    study = db_session.get(Study, study_id) if study_id else None
    if study is None or study.kind != "search":
        return False
    return search.prunes(StudyCreate.model_validate(study.spec).search)


def verdict(*, db_session: Session, study_id: str, job_id: str) -> str | None:
    """None to keep training; else why the member is pruned, with the rule and the numbers."""
    study, job = db_session.get(Study, study_id), db_session.get(Job, job_id)
    request = StudyCreate.model_validate(study.spec)
    jobs = repository.members(db_session=db_session, study_id=study_id)
    records = conductor.trial_records(db_session=db_session, request=request, jobs=jobs)
    return search.prune_verdict(search=request.search, metric=request.objective.metric,
                                mode=request.objective.mode, trials=records,
                                reports=reports(db_session=db_session, jobs=jobs, metric=request.objective.metric),
                                number=job.member, max_epochs=job.spec["training"]["epochs"])


def reports(*, db_session: Session, jobs: list[Job], metric: str) -> list[tuple[int, int, float]]:
    """(member, epoch, objective) of every member's epoch points, in the order they were recorded."""
    number = {j.id: j.member for j in jobs}
    rows = db_session.execute(select(Metric.job_id, Metric.epoch, Metric.values)
                              .where(Metric.job_id.in_(list(number)), Metric.kind == "epoch").order_by(Metric.id))
    out = []
    for job_id, epoch, values in rows:
        value = values.get(metric)
        if isinstance(value, (int, float)) and math.isfinite(value):
            out.append((number[job_id], epoch, float(value)))
    return out
