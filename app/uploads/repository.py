"""Upload queries; every read of an upload is scoped to its tenant. The conditional UPDATEs are the
locks that order a part's record, a complete's claim, an abort and the expiry sweep."""
from datetime import datetime

from sqlalchemy import delete, func, or_, select, update
from sqlalchemy.orm import Session

from app.models import Upload, UploadPart


def get(*, db_session: Session, tenant_id: str, upload_id: str) -> Upload | None:
    return db_session.scalar(select(Upload).where(Upload.id == upload_id, Upload.tenant_id == tenant_id))


def parts(*, db_session: Session, upload_id: str) -> list[UploadPart]:
    return list(db_session.scalars(select(UploadPart).where(UploadPart.upload_id == upload_id)
                                   .order_by(UploadPart.n)))


def part(*, db_session: Session, upload_id: str, n: int) -> UploadPart | None:
    return db_session.get(UploadPart, (upload_id, n))


def hold_open(*, db_session: Session, tenant_id: str, upload_id: str, now: datetime,
              expires_at: datetime | None = None) -> bool:
    """Locks the upload's row if it is open (not expired, completing or completed), moving its expiry to
    ``expires_at`` when given; False when it is not open. The row stays locked until the commit."""
    values = {"expires_at": expires_at} if expires_at is not None else {"expires_at": Upload.expires_at}
    result = db_session.execute(
        update(Upload).where(Upload.id == upload_id, Upload.tenant_id == tenant_id, Upload.expires_at > now,
                             Upload.completing_since.is_(None), Upload.dataset_id.is_(None))
        .values(**values).execution_options(synchronize_session=False))
    return result.rowcount == 1


def claim_completion(*, db_session: Session, tenant_id: str, upload_id: str, now: datetime,
                     stale_before: datetime) -> bool:
    """Marks the upload as completing unless another complete holds it (one older than
    ``stale_before`` is taken to have died); False when it is not there to claim."""
    result = db_session.execute(
        update(Upload).where(Upload.id == upload_id, Upload.tenant_id == tenant_id, Upload.expires_at > now,
                             Upload.dataset_id.is_(None),
                             or_(Upload.completing_since.is_(None), Upload.completing_since < stale_before))
        .values(completing_since=now).execution_options(synchronize_session=False))
    return result.rowcount == 1


def release_completion(*, db_session: Session, upload_id: str) -> None:
    db_session.execute(update(Upload).where(Upload.id == upload_id).values(completing_since=None)
                       .execution_options(synchronize_session=False))


def put_part(*, db_session: Session, upload_id: str, n: int, size: int, sha256: str, now: datetime) -> UploadPart:
    """Records part ``n`` (replacing an earlier one of that number)."""
    row = part(db_session=db_session, upload_id=upload_id, n=n)
    if row is None:
        row = UploadPart(upload_id=upload_id, n=n)
        db_session.add(row)
    row.size, row.sha256, row.received_at = size, sha256, now
    db_session.flush()
    return row


def mark_completed(*, db_session: Session, upload_id: str, dataset_id: str) -> None:
    """The upload became ``dataset_id``: its part rows go, the row stays to answer a repeated complete."""
    db_session.execute(delete(UploadPart).where(UploadPart.upload_id == upload_id))
    db_session.execute(update(Upload).where(Upload.id == upload_id).values(dataset_id=dataset_id, completing_since=None)
                       .execution_options(synchronize_session=False))


def remove(*, db_session: Session, upload_id: str) -> None:
    """Deletes the upload's rows (its parts' objects are the caller's to remove)."""
    db_session.execute(delete(UploadPart).where(UploadPart.upload_id == upload_id))
    db_session.execute(delete(Upload).where(Upload.id == upload_id).execution_options(synchronize_session=False))


def remove_if_expired(*, db_session: Session, upload_id: str, now: datetime) -> bool:
    """Deletes an upload that is still expired (no part can move its expiry on once it has passed)."""
    if db_session.scalar(select(Upload.id).where(Upload.id == upload_id, Upload.expires_at <= now)) is None:
        return False
    remove(db_session=db_session, upload_id=upload_id)
    return True


def expired_ids(*, db_session: Session, now: datetime, stale_before: datetime, limit: int) -> list[str]:
    """Uploads past their expiry that no live complete is working on (one claimed before
    ``stale_before`` died with its process)."""
    idle = or_(Upload.completing_since.is_(None), Upload.completing_since < stale_before)
    return list(db_session.scalars(select(Upload.id).where(Upload.expires_at <= now, idle)
                                   .order_by(Upload.expires_at).limit(limit)))


def open_bytes(*, db_session: Session, tenant_id: str, now: datetime) -> int:
    """The declared sizes of the tenant's open uploads: what their parts may still take up."""
    return int(db_session.scalar(select(func.coalesce(func.sum(Upload.size), 0))
                                 .where(Upload.tenant_id == tenant_id, Upload.expires_at > now,
                                        Upload.dataset_id.is_(None))))
