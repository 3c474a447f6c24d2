from datetime import datetime

from sqlalchemy import BigInteger, ForeignKey, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from app.models.base import Base, UTCDateTime, utcnow


class Tenant(Base):
    __tablename__ = "tenants"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    # Quota overrides set by `trainyard tenants set-quota` (app/quotas/): None takes the
    # server's QUOTA_* default, 0 is no limit.
    quota_jobs: Mapped[int | None] = mapped_column(Integer, default=None)
    quota_running_jobs: Mapped[int | None] = mapped_column(Integer, default=None)
    quota_study_members: Mapped[int | None] = mapped_column(Integer, default=None)
    quota_stored_bytes: Mapped[int | None] = mapped_column(BigInteger, default=None)


class ApiKey(Base):
    __tablename__ = "api_keys"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id"), index=True)
    name: Mapped[str] = mapped_column(String(200))
    # Only the SHA-256 digest is kept: a leaked database leaks no usable key.
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    prefix: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    # None: the key never expires. Past it the key is refused (app/auth/service.py).
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    # Written at most once a minute per key (app/auth/service.py says why), so it is the
    # last use to within a minute.
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
