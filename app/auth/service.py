"""API keys: random, shown once, stored only as SHA-256 digests; listed, expired and revoked."""
import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from time import monotonic

from sqlalchemy import func, or_, select, update
from sqlalchemy.orm import Session

from app.config import get_settings
from app.db import after_commit
from app.errors import ApiError
from app.models import ApiKey, Tenant
from app.models.base import new_id, utcnow

KEY_PREFIX = "ty_"
# last_used_at is written at most this often per key: a write on every request would put a
# database write (on SQLite, the one writer lock) on the hot path of every call, for a figure
# a person reads to the minute. The cache below already spares most requests the lookup.
LAST_USED_RESOLUTION = timedelta(minutes=1)


@dataclass
class CreatedKey:
    key: str
    key_id: str
    tenant_id: str
    tenant_name: str
    row: ApiKey


class ExpiredKey(Exception):
    """A key past its expires_at. Its holder may be told so: only the holder can present it."""


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def create_key(*, db_session: Session, name: str, tenant_name: str, expires_at: datetime | None = None) -> CreatedKey:
    """Creates an API key for the named tenant, creating the tenant if it is new."""
    tenant = db_session.scalar(select(Tenant).where(Tenant.name == tenant_name))
    if tenant is None:
        tenant = Tenant(id=new_id("tn"), name=tenant_name)
        db_session.add(tenant)
        db_session.flush()
    return add_key(db_session=db_session, tenant=tenant, name=name, expires_at=expires_at)


def add_key(*, db_session: Session, tenant: Tenant, name: str, expires_at: datetime | None) -> CreatedKey:
    """Another key for ``tenant``; ``expires_at`` (aware) must be in the future."""
    if expires_at is not None and expires_at <= utcnow():
        raise ApiError(422, f"expires_at must be in the future, got {expires_at.isoformat()}", "expires_at")
    key = KEY_PREFIX + secrets.token_urlsafe(32)  # 256 random bits
    row = ApiKey(id=new_id("key"), tenant_id=tenant.id, name=name, key_hash=hash_key(key),
                 prefix=key[:10], expires_at=expires_at)
    db_session.add(row)
    db_session.flush()
    return CreatedKey(key=key, key_id=row.id, tenant_id=tenant.id, tenant_name=tenant.name, row=row)


def create_for_tenant(*, db_session: Session, tenant_id: str, name: str, expires_at: datetime | None) -> CreatedKey:
    """POST /v1/keys: another key for the caller's own tenant."""
    tenant = db_session.get(Tenant, tenant_id)
    return add_key(db_session=db_session, tenant=tenant, name=name, expires_at=expires_at)


def list_page(*, db_session: Session, tenant_id: str | None, limit: int, offset: int) -> tuple[list[ApiKey], int]:
    """A tenant's keys (every tenant's with None: the operator's CLI), newest first."""
    query = select(ApiKey)
    if tenant_id is not None:
        query = query.where(ApiKey.tenant_id == tenant_id)
    total = db_session.scalar(select(func.count()).select_from(query.subquery()))
    rows = db_session.scalars(query.order_by(ApiKey.created_at.desc(), ApiKey.id).limit(limit).offset(offset)).all()
    return list(rows), total


def revoke(*, db_session: Session, key_id: str, tenant_id: str | None) -> ApiKey:
    """Revokes a key (of ``tenant_id``'s; any tenant's with None). Revoking a revoked key
    changes nothing: its first revoked_at stays. This process forgets the key once the
    revocation has committed (other processes within AUTH_CACHE_SECONDS)."""
    query = select(ApiKey).where(ApiKey.id == key_id)
    if tenant_id is not None:
        query = query.where(ApiKey.tenant_id == tenant_id)
    row = db_session.scalar(query)
    if row is None:
        raise ApiError(404, f"no API key '{key_id}'", "key_id")
    if row.revoked_at is None:
        row.revoked_at = utcnow()
        db_session.flush()
        digest = row.key_hash
        # After the commit: dropped before it, a request in between could remember the key again.
        after_commit(db_session, lambda: _tenants.pop(digest, None))
    return row


# Key digest -> (tenant id, monotonic deadline), for live keys only: every request
# authenticates, and the lookup was a third of a GET /v1/jobs/{id}. Unknown, revoked and
# expired keys are looked up every time, so a new key works at once and the cache holds only
# as many entries as there are live keys in use (cleared outright past CACHE_LIMIT). An
# entry lasts AUTH_CACHE_SECONDS, or until its key expires if that is sooner.
_tenants: dict[str, tuple[str, float]] = {}
CACHE_LIMIT = 10_000


def remembered_tenant(key: str) -> str | None:
    """The tenant of a live key this process looked up less than AUTH_CACHE_SECONDS ago, or None."""
    cached = _tenants.get(hash_key(key))
    return cached[0] if cached is not None and cached[1] > monotonic() else None


def tenant_for_key(*, db_session: Session, key: str) -> str | None:
    """Returns the tenant id of a live key, or None for an unknown or revoked one; ExpiredKey
    past its expiry. A key revoked less than AUTH_CACHE_SECONDS ago by another process (or
    the CLI) may still be answered from this process's memory. Marks the key used."""
    digest = hash_key(key)
    now = monotonic()
    cached = _tenants.get(digest)
    if cached is not None and cached[1] > now:
        return cached[0]
    row = db_session.execute(
        select(ApiKey.id, ApiKey.tenant_id, ApiKey.expires_at, ApiKey.last_used_at)
        .where(ApiKey.key_hash == digest, ApiKey.revoked_at.is_(None))
    ).first()
    if row is None:
        _tenants.pop(digest, None)
        return None
    wall = utcnow()
    if row.expires_at is not None and row.expires_at <= wall:
        _tenants.pop(digest, None)
        raise ExpiredKey()
    mark_used(db_session=db_session, key_id=row.id, last_used_at=row.last_used_at)
    ttl = get_settings().auth_cache_seconds
    if row.expires_at is not None:
        ttl = min(ttl, (row.expires_at - wall).total_seconds())
    if ttl > 0:
        if len(_tenants) >= CACHE_LIMIT:
            _tenants.clear()
        _tenants[digest] = (row.tenant_id, now + ttl)
    return row.tenant_id


def mark_used(*, db_session: Session, key_id: str, last_used_at: datetime | None) -> None:
    """last_used_at = now, when it is older than LAST_USED_RESOLUTION. The UPDATE repeats the
    condition, so processes authenticating the same key at once write it once."""
    now = utcnow()
    stale = now - LAST_USED_RESOLUTION
    if last_used_at is not None and last_used_at > stale:
        return
    db_session.execute(update(ApiKey).where(ApiKey.id == key_id, or_(ApiKey.last_used_at.is_(None),
                                                                     ApiKey.last_used_at <= stale))
                       .values(last_used_at=now))
