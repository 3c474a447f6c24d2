"""Dataset queries; every read is scoped to the tenant."""
from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session

from app.models import Dataset, Job
from app.jobs.lifecycle import ACTIVE


def get(*, db_session: Session, tenant_id: str, dataset_id: str) -> Dataset | None:
    return db_session.scalar(
        select(Dataset).where(Dataset.id == dataset_id, Dataset.tenant_id == tenant_id)
    )


def list_page(*, db_session: Session, tenant_id: str, limit: int, offset: int) -> tuple[list[Dataset], int]:
    where = Dataset.tenant_id == tenant_id
    total = db_session.scalar(select(func.count()).select_from(Dataset).where(where))
    rows = db_session.scalars(
        select(Dataset).where(where).order_by(Dataset.created_at.desc(), Dataset.id)
        .limit(limit).offset(offset)
    ).all()
    return list(rows), total or 0


def find_builtin(*, db_session: Session, tenant_id: str, sha256: str, name: str) -> Dataset | None:
    """The tenant's oldest row holding this builtin with these parameters and this content."""
    return db_session.scalars(
        select(Dataset).where(Dataset.tenant_id == tenant_id, Dataset.sha256 == sha256,
                              Dataset.source_format == "builtin", Dataset.name == name)
        .order_by(Dataset.created_at, Dataset.id).limit(1)
    ).first()


def active_job_count(*, db_session: Session, dataset_id: str) -> int:
    """Queued or running jobs that train or validate on the dataset."""
    validates_on = Job.spec[("data", "validation_dataset")].as_string()
    return db_session.scalar(
        select(func.count()).select_from(Job)
        .where(or_(Job.dataset_id == dataset_id, validates_on == dataset_id),
               Job.status.in_(ACTIVE))
    ) or 0


def other_rows_with_blob(*, db_session: Session, sha256: str, exclude_id: str) -> int:
    return db_session.scalar(
        select(func.count()).select_from(Dataset)
        .where(Dataset.sha256 == sha256, Dataset.id != exclude_id)
    ) or 0
