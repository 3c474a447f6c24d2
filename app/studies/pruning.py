"""Whether a search's pruner stops a member now: asked by the member's own worker as its epochs arrive."""
from sqlalchemy.orm import Session

from app.models import Job, Study
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
    # One read of the members' epoch values serves both the trials and the replay's order.
    reports = repository.objective_reports(db_session=db_session, jobs=jobs, metric=request.objective.metric)
    return search.prune_verdict(search=request.search, metric=request.objective.metric,
                                mode=request.objective.mode,
                                trials=conductor.trial_records(request=request, jobs=jobs, reports=reports),
                                reports=reports, number=job.member, max_epochs=job.spec["training"]["epochs"])
