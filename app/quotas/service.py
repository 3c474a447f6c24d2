"""Per-tenant quotas: each one's limit (the tenant's override, else the server's default), its
current use, and the checks, each in the transaction of the write it guards.

Where each is checked, and why there:
- jobs (queued, retrying and running jobs outside studies): POST /v1/jobs, a 429;
- study members (the tenant's study members that have not ended: held, queued, running):
  POST /v1/studies with the new study's planned members, a 429 (a search's trials count as
  they are made);
- stored bytes (datasets' stored arrays plus jobs' artifact folders): before an upload's
  arrays are written, with their size (413); a job or study submitted while the tenant is
  already at or over it is a 413 too, as its weights would add to it;
- running jobs: not a refusal. A worker's claim of a job over it leaves the job queued
  ("waiting: tenant at its running-jobs quota (2)") and the next reaper sweep sends it again.

Counting and inserting race: two requests could both count 9 of 10 and both insert. So a check
first writes the tenant's row (lock_tenant), which makes every check of that tenant wait for the
previous one's commit: a row lock on PostgreSQL, the database's write lock on SQLite (whose
deferred transactions take it at their first write, so the count after it sees every commit
before it). Two concurrent submits can then never both pass.
"""
from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from app.config import Settings, get_settings
from app.errors import ApiError
from app.jobs.lifecycle import ACTIVE, WAITING, JobStatus
from app.models import Dataset, Job, Tenant

# quota name -> (the tenants column of its override, the Settings field of its default)
QUOTAS = {
    "jobs": ("quota_jobs", "quota_jobs"),
    "running_jobs": ("quota_running_jobs", "quota_running_jobs"),
    "study_members": ("quota_study_members", "quota_study_members"),
    "stored_bytes": ("quota_stored_bytes", "quota_stored_bytes"),
}


class QuotaExceeded(ApiError):
    """A request over a quota: the body names the quota, its limit and the tenant's current use."""

    def __init__(self, *, quota: str, limit: int, used: int, adding: int, field: str, status: int = 429):
        unit = " bytes" if quota == "stored_bytes" else ""
        message = (f"over the tenant's {quota} quota: limit {limit:,}{unit}, in use {used:,}{unit}, "
                   f"this request adds {adding:,}{unit}")
        super().__init__(status, message, field)
        self.quota, self.limit, self.used = quota, limit, used


def limits_of(tenant: Tenant | None, settings: Settings | None = None) -> dict[str, int]:
    """Each quota's limit for the tenant (0: none): its override, else the server's default."""
    settings = settings or get_settings()
    out = {}
    for name, (column, default) in QUOTAS.items():
        override = getattr(tenant, column) if tenant is not None else None
        out[name] = getattr(settings, default) if override is None else override
    return out


def limit(*, db_session: Session, tenant_id: str, quota: str) -> int:
    return limits_of(db_session.get(Tenant, tenant_id))[quota]


def lock_tenant(*, db_session: Session, tenant_id: str) -> None:
    """Serializes this tenant's quota checks until the transaction ends (the module docstring says how)."""
    db_session.execute(update(Tenant).where(Tenant.id == tenant_id).values(name=Tenant.name)
                       .execution_options(synchronize_session=False))


def jobs_in_use(*, db_session: Session, tenant_id: str) -> int:
    return db_session.scalar(select(func.count()).select_from(Job).where(
        Job.tenant_id == tenant_id, Job.study_id.is_(None), Job.status.in_(WAITING | {JobStatus.RUNNING})))


def running_in_use(*, db_session: Session, tenant_id: str, besides: str | None = None) -> int:
    query = select(func.count()).select_from(Job).where(Job.tenant_id == tenant_id, Job.status == JobStatus.RUNNING)
    if besides is not None:
        query = query.where(Job.id != besides)
    return db_session.scalar(query)


def members_in_use(*, db_session: Session, tenant_id: str) -> int:
    return db_session.scalar(select(func.count()).select_from(Job).where(
        Job.tenant_id == tenant_id, Job.study_id.is_not(None), Job.status.in_(ACTIVE)))


def bytes_in_use(*, db_session: Session, tenant_id: str) -> int:
    datasets = db_session.scalar(select(func.coalesce(func.sum(Dataset.bytes), 0)).where(Dataset.tenant_id == tenant_id))
    artifacts = db_session.scalar(select(func.coalesce(func.sum(Job.artifact_bytes), 0)).where(Job.tenant_id == tenant_id))
    return int(datasets) + int(artifacts)


def usage(*, db_session: Session, tenant_id: str) -> dict[str, int]:
    return {"jobs": jobs_in_use(db_session=db_session, tenant_id=tenant_id),
            "running_jobs": running_in_use(db_session=db_session, tenant_id=tenant_id),
            "study_members": members_in_use(db_session=db_session, tenant_id=tenant_id),
            "stored_bytes": bytes_in_use(db_session=db_session, tenant_id=tenant_id)}


def check_new_jobs(*, db_session: Session, tenant_id: str, jobs: int = 0, members: int = 0) -> None:
    """Before a job (jobs=1) or a study's members are inserted, in the same transaction: a 429 over
    the jobs or study-members quota, a 413 when the tenant is already at its stored-bytes quota."""
    limits = limits_of(db_session.get(Tenant, tenant_id))
    if not any(limits[q] for q in ("jobs", "study_members", "stored_bytes")):
        return
    lock_tenant(db_session=db_session, tenant_id=tenant_id)
    if jobs and limits["jobs"]:
        used = jobs_in_use(db_session=db_session, tenant_id=tenant_id)
        if used + jobs > limits["jobs"]:
            raise QuotaExceeded(quota="jobs", limit=limits["jobs"], used=used, adding=jobs, field="body")
    if members and limits["study_members"]:
        used = members_in_use(db_session=db_session, tenant_id=tenant_id)
        if used + members > limits["study_members"]:
            raise QuotaExceeded(quota="study_members", limit=limits["study_members"], used=used,
                                adding=members, field="body")
    if limits["stored_bytes"]:
        used = bytes_in_use(db_session=db_session, tenant_id=tenant_id)
        if used >= limits["stored_bytes"]:
            raise QuotaExceeded(quota="stored_bytes", limit=limits["stored_bytes"], used=used, adding=0,
                                field="body", status=413)


def check_stored_bytes(*, db_session: Session, tenant_id: str, adding: int, field: str = "file") -> None:
    """Before ``adding`` bytes of a dataset are written: a 413 when they would go over the quota."""
    quota = limit(db_session=db_session, tenant_id=tenant_id, quota="stored_bytes")
    if not quota:
        return
    lock_tenant(db_session=db_session, tenant_id=tenant_id)
    used = bytes_in_use(db_session=db_session, tenant_id=tenant_id)
    if used + adding > quota:
        raise QuotaExceeded(quota="stored_bytes", limit=quota, used=used, adding=adding, field=field, status=413)


def may_start(*, db_session: Session, job_id: str) -> bool:
    """Whether the job's tenant has a running slot for it; the claim follows in the same transaction."""
    tenant_id = db_session.scalar(select(Job.tenant_id).where(Job.id == job_id))
    if tenant_id is None:
        return True  # gone: the claim finds nothing either
    quota = limit(db_session=db_session, tenant_id=tenant_id, quota="running_jobs")
    if not quota:
        return True
    lock_tenant(db_session=db_session, tenant_id=tenant_id)
    return running_in_use(db_session=db_session, tenant_id=tenant_id, besides=job_id) < quota


def running_wait_reason(*, db_session: Session, job: Job) -> str | None:
    """'waiting: tenant at its running-jobs quota (2)' while that is what keeps a waiting job waiting."""
    quota = limit(db_session=db_session, tenant_id=job.tenant_id, quota="running_jobs")
    if quota and running_in_use(db_session=db_session, tenant_id=job.tenant_id) >= quota:
        return f"waiting: tenant at its running-jobs quota ({quota})"
    return None


def record_artifacts(*, db_session: Session, job_id: str) -> int:
    """Measures the job's artifact folder and records its bytes (when the job ends, after an export)."""
    from app.storage import get_store, job_folder

    size = get_store().folder_bytes(job_folder(job_id))
    db_session.execute(update(Job).where(Job.id == job_id, Job.artifact_bytes != size).values(artifact_bytes=size)
                       .execution_options(synchronize_session=False))
    return size


def find_tenant(*, db_session: Session, tenant: str) -> Tenant:
    """A tenant by name or id (the CLI's TENANT); an ApiError(404) when there is none."""
    found = db_session.scalar(select(Tenant).where((Tenant.name == tenant) | (Tenant.id == tenant)))
    if found is None:
        raise ApiError(404, f"no tenant named {tenant!r}", "TENANT")
    return found


def set_quotas(*, db_session: Session, tenant: Tenant, values: dict[str, int | None]) -> None:
    """Overrides quotas of the tenant: a number (0: no limit), or None to take the server's default again."""
    for name, value in values.items():
        if value is not None and value < 0:
            raise ApiError(422, f"a quota is a count, 0 (no limit) or 'default'; got {value}", name)
        setattr(tenant, QUOTAS[name][0], value)
    db_session.flush()


def parse_amount(text: str, *, byte_units: bool = False) -> int | None:
    """'default' -> None; '10', or with byte_units '10GiB', '500MB' -> the number."""
    text = text.strip()
    if text.lower() == "default":
        return None
    units = {"kib": 2**10, "mib": 2**20, "gib": 2**30, "tib": 2**40, "kb": 10**3, "mb": 10**6, "gb": 10**9,
             "tb": 10**12, "b": 1} if byte_units else {}
    lower = text.lower()
    for unit, factor in units.items():
        if lower.endswith(unit) and lower[:-len(unit)].strip().replace(".", "", 1).isdigit():
            return int(float(lower[:-len(unit)]) * factor)
    if not text.isdigit():
        raise ValueError(f"{text!r}: a whole number{', or with a unit (10GiB, 500MB)' if byte_units else ''}, "
                         "0 for no limit, or 'default'")
    return int(text)
