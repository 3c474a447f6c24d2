"""Study and member queries; they write nothing (a study's status: app/studies/lifecycle.py)."""
import math

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.jobs import lifecycle
from app.labels import conditions
from app.models import Job, Metric, Study
from app.models.base import utcnow
from app.studies.history import MemberHistory


def get(*, db_session: Session, tenant_id: str, study_id: str) -> Study | None:
    return db_session.scalar(select(Study).where(Study.id == study_id, Study.tenant_id == tenant_id))


def get_by_idempotency_key(*, db_session: Session, tenant_id: str, key: str) -> Study | None:
    return db_session.scalar(select(Study).where(Study.tenant_id == tenant_id, Study.idempotency_key == key))


def list_page(*, db_session: Session, tenant_id: str, status: str | None, limit: int, offset: int,
              labels: dict[str, str | None] | None = None, name: str | None = None,
              name_prefix: str | None = None) -> tuple[list[Study], int]:
    where = [Study.tenant_id == tenant_id, *conditions(labels_column=Study.labels, name_column=Study.name,
                                                       labels=labels or {}, name=name, name_prefix=name_prefix)]
    where += [Study.status == status] if status else []
    total = db_session.scalar(select(func.count()).select_from(Study).where(*where)) or 0
    rows = db_session.scalars(select(Study).where(*where).order_by(Study.created_at.desc(), Study.id)
                              .limit(limit).offset(offset)).all()
    return list(rows), total


def members(*, db_session: Session, study_id: str) -> list[Job]:
    """The study's member jobs in member order."""
    return list(db_session.scalars(select(Job).where(Job.study_id == study_id).order_by(Job.member)).all())


def waiting_members(*, db_session: Session, study_id: str, queue: str, besides: str) -> list[Job]:
    """The study's claimable members on ``queue`` (queued or retrying, or running on a lost lease; not
    held), in member order: the ones a worker that claimed ``besides`` may pack with it (worker/packs.py).
    A lost pack's members lapse one by one, and the reaper requeues each on its own sweep: the first
    retry takes the others whose leases have run out too, so that the pack forms again."""
    return list(db_session.scalars(select(Job).where(Job.study_id == study_id, Job.queue == queue,
                                                     lifecycle.claimable_now(utcnow()), Job.id != besides)
                                   .order_by(Job.member)).all())


def counts(*, db_session: Session, study_ids: list[str]) -> dict[str, dict[str, int]]:
    """Members per status, per study."""
    out: dict[str, dict[str, int]] = {s: {} for s in study_ids}
    rows = db_session.execute(select(Job.study_id, Job.status, func.count()).where(Job.study_id.in_(study_ids))
                              .group_by(Job.study_id, Job.status))
    for study_id, status, n in rows:
        out[study_id][status] = n
    return out


def epoch_points(*, db_session: Session, job_ids: list[str]) -> dict[str, list[dict]]:
    """Each job's epoch points in step order, as {"epoch", "step", **values}."""
    out: dict[str, list[dict]] = {j: [] for j in job_ids}
    rows = db_session.execute(select(Metric.job_id, Metric.epoch, Metric.step, Metric.values)
                              .where(Metric.job_id.in_(job_ids), Metric.kind == "epoch")
                              .order_by(Metric.job_id, Metric.step, Metric.id))
    for job_id, epoch, step, values in rows:
        out[job_id].append({**values, "epoch": epoch, "step": step})
    return out


def objective_reports(*, db_session: Session, jobs: list[Job], metric: str) -> list[tuple[int, int, float]]:
    """(member, epoch, value of ``metric``) of the jobs' epoch points, in the order they were recorded
    (the metric ids): a search's trials and its pruner's replay (app/studies/search.py)."""
    number = {j.id: j.member for j in jobs}
    rows = db_session.execute(select(Metric.job_id, Metric.epoch, Metric.values)
                              .where(Metric.job_id.in_(list(number)), Metric.kind == "epoch").order_by(Metric.id))
    return [(number[job_id], epoch, float(values[metric])) for job_id, epoch, values in rows
            if isinstance(values.get(metric), (int, float)) and math.isfinite(values[metric])]


def histories(*, db_session: Session, jobs: list[Job]) -> list[MemberHistory]:
    """The members' loss histories, for the leaderboard, the curves and the pruner."""
    points = epoch_points(db_session=db_session, job_ids=[j.id for j in jobs])
    return [MemberHistory(job_id=j.id, variant=j.variant or "", seed=j.spec["training"]["seed"], status=j.status,
                          epochs=points[j.id], wall_seconds=_wall(j)) for j in jobs]


def _wall(job: Job) -> float | None:
    if job.started_at is None or job.finished_at is None:
        return None
    return (job.finished_at - job.started_at).total_seconds()
