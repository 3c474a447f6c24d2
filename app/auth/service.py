"""API keys: random, shown once, stored only as SHA-256 digests."""
import hashlib
import secrets
from dataclasses import dataclass
from time import monotonic

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.config import get_settings
from app.models import ApiKey, Tenant
from app.models.base import new_id

KEY_PREFIX = "ty_"


@dataclass
class CreatedKey:
    key: str
    key_id: str
    tenant_id: str
    tenant_name: str


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def create_key(*, db_session: Session, name: str, tenant_name: str) -> CreatedKey:
    """Creates an API key for the named tenant, creating the tenant if it is new."""
    tenant = db_session.scalar(select(Tenant).where(Tenant.name == tenant_name))
    if tenant is None:
        tenant = Tenant(id=new_id("tn"), name=tenant_name)
        db_session.add(tenant)
        db_session.flush()
    key = KEY_PREFIX + secrets.token_urlsafe(32)  # 256 random bits
    row = ApiKey(id=new_id("key"), tenant_id=tenant.id, name=name, key_hash=hash_key(key),
                 prefix=key[:10])
    db_session.add(row)
    db_session.flush()
    return CreatedKey(key=key, key_id=row.id, tenant_id=tenant.id, tenant_name=tenant.name)


# Key digest -> (tenant id, monotonic expiry), for live keys only: every request
# authenticates, and the lookup was a third of a GET /v1/jobs/{id}. Unknown and revoked
# keys are looked up every time, so a new key works at once and the cache holds only as
# many entries as there are live keys in use (cleared outright past CACHE_LIMIT).
_tenants: dict[str, tuple[str, float]] = {}
CACHE_LIMIT = 10_000


def remembered_tenant(key: str) -> str | None:
    """The tenant of a live key this process looked up less than AUTH_CACHE_SECONDS ago, or None."""
    cached = _tenants.get(hash_key(key))
    return cached[0] if cached is not None and cached[1] > monotonic() else None


def tenant_for_key(*, db_session: Session, key: str) -> str | None:
    """Returns the tenant id of a live key, or None; a key revoked less than
    AUTH_CACHE_SECONDS ago may still be answered from this process's memory."""
    digest = hash_key(key)
    now = monotonic()
    cached = _tenants.get(digest)
    if cached is not None and cached[1] > now:
        return cached[0]
    tenant_id = db_session.scalar(
        select(ApiKey.tenant_id).where(ApiKey.key_hash == digest, ApiKey.revoked_at.is_(None))
    )
    if tenant_id is None:
        _tenants.pop(digest, None)
        return None
    ttl = get_settings().auth_cache_seconds
    if ttl > 0:
        if len(_tenants) >= CACHE_LIMIT:
            _tenants.clear()
        _tenants[digest] = (tenant_id, now + ttl)
    return tenant_id
