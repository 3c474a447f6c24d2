from datetime import datetime

from sqlalchemy import ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column

from app.models.base import Base, UTCDateTime, utcnow


class BrowserSession(Base):
    """A dashboard sign-in: the browser holds a random token in an HttpOnly cookie; only its
    SHA-256 digest is kept. It lasts while the API key it was made with is live."""

    __tablename__ = "browser_sessions"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id"), index=True)
    api_key_id: Mapped[str] = mapped_column(ForeignKey("api_keys.id"), index=True)
    # Sent back by the page on every state-changing request (X-CSRF-Token): a cross-site form
    # can make the browser send the cookie, but cannot read this.
    csrf_token: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
