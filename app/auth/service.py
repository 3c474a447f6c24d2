"""API keys: random, shown once, stored only as SHA-256 digests."""
import hashlib
import secrets
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

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


def tenant_for_key(*, db_session: Session, key: str) -> str | None:
    """Returns the tenant id of a live key, or None."""
    row = db_session.scalar(
        select(ApiKey).where(ApiKey.key_hash == hash_key(key), ApiKey.revoked_at.is_(None))
    )
    return row.tenant_id if row else None
