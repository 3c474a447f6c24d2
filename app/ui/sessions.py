"""Dashboard sign-ins. A browser cannot send an Authorization header on an EventSource, and a
page should not hold the API key in script, so signing in with the key once makes a session: a
random token in an HttpOnly, SameSite=Strict cookie, stored here as its SHA-256 digest with the
tenant, the key it was made with (revoking the key, or its expiry, ends it) and a CSRF token that the pages
send back in X-CSRF-Token on every state-changing request (app/deps.py checks it).
"""
import hashlib
import secrets
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import delete, or_, select
from sqlalchemy.orm import Session

from app.auth.service import ExpiredKey, hash_key, mark_used
from app.config import get_settings
from app.models import ApiKey, BrowserSession
from app.models.base import new_id, utcnow

COOKIE = "trainyard_session"
CSRF_HEADER = "X-CSRF-Token"


@dataclass(frozen=True)
class SignedIn:
    token: str  # the cookie's value, shown to the browser once
    csrf_token: str
    max_age: int  # seconds


@dataclass(frozen=True)
class Current:
    tenant_id: str
    csrf_token: str


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def sign_in(*, db_session: Session, key: str) -> SignedIn | None:
    """A session for a live API key, or None for an unknown or revoked one; ExpiredKey past its
    expiry. The session ends with the key's expiry at the latest."""
    api_key = db_session.scalar(select(ApiKey).where(ApiKey.key_hash == hash_key(key), ApiKey.revoked_at.is_(None)))
    if api_key is None:
        return None
    now, lasts = utcnow(), timedelta(hours=get_settings().session_hours)
    if api_key.expires_at is not None:
        if api_key.expires_at <= now:
            raise ExpiredKey()
        lasts = min(lasts, api_key.expires_at - now)
    mark_used(db_session=db_session, key_id=api_key.id, last_used_at=api_key.last_used_at)
    db_session.execute(delete(BrowserSession).where(BrowserSession.expires_at <= now))  # old ones, in passing
    token, csrf = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
    db_session.add(BrowserSession(id=new_id("bs"), token_hash=_digest(token), tenant_id=api_key.tenant_id,
                                  api_key_id=api_key.id, csrf_token=csrf, expires_at=now + lasts))
    db_session.flush()
    return SignedIn(token=token, csrf_token=csrf, max_age=max(1, int(lasts.total_seconds())))


def current(*, db_session: Session, token: str) -> Current | None:
    """The session of a cookie's token while it has not expired and its key is live: neither
    revoked nor expired (a key's expiry also bounds the session's own, but is checked here too)."""
    now = utcnow()
    row = db_session.execute(
        select(BrowserSession.tenant_id, BrowserSession.csrf_token)
        .join(ApiKey, ApiKey.id == BrowserSession.api_key_id)
        .where(BrowserSession.token_hash == _digest(token), BrowserSession.expires_at > now,
               ApiKey.revoked_at.is_(None), or_(ApiKey.expires_at.is_(None), ApiKey.expires_at > now))).first()
    return None if row is None else Current(tenant_id=row.tenant_id, csrf_token=row.csrf_token)


def sign_out(*, db_session: Session, token: str) -> None:
    db_session.execute(delete(BrowserSession).where(BrowserSession.token_hash == _digest(token)))


def csrf_matches(sent: str | None, expected: str) -> bool:
    return sent is not None and secrets.compare_digest(sent, expected)
