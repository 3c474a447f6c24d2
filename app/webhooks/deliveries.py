"""The sender's reads and writes: claim due deliveries under a lease, record each attempt's outcome,
schedule the retry (exponential backoff with jitter) or give up a day after the event.

The lease is ``next_attempt_at`` itself: a claim moves it LEASE_SECONDS ahead in one
``UPDATE ... WHERE status = 'pending' AND next_attempt_at <= now RETURNING``, so two senders
never send one delivery at once (on PostgreSQL the second UPDATE waits for the first's row lock,
then re-checks the WHERE and skips the row; SQLite has one writer). A sender that dies mid-send
leaves the row to come due again when the lease ends: at least once, with the same webhook-id.
An attempt is counted at its claim, and its outcome is written only while ``attempts`` is still
that count (a fence): a late answer never overwrites a later attempt's.
"""
import random
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, func, select, update
from sqlalchemy.orm import Session

from app.models import Webhook, WebhookDelivery
from app.models.base import utcnow
from app.webhooks.outbox import DELIVERED, FAILED, PENDING

# Longer than a send can take (WEBHOOK_TIMEOUT_SECONDS to connect, then per read).
LEASE_SECONDS = 120
# Seconds before retry n (1, 2, ...), then the last one again: about 16 tries over the day.
BACKOFF_SECONDS = (5, 30, 120, 600, 1800, 3600, 2 * 3600, 4 * 3600)
JITTER = 0.1  # +-10%: receivers that came back are not hit by every sender's retries at once
GIVE_UP_AFTER = timedelta(hours=24)


@dataclass(frozen=True)
class Claimed:
    """One attempt the sender makes: the delivery, its webhook's URL and secret."""

    id: str
    webhook_id: str
    url: str
    secret: str
    payload: dict[str, Any]
    attempt: int  # this attempt's number (1 is the first)
    created_at: datetime


def _due(now: datetime):
    return and_(WebhookDelivery.status == PENDING, WebhookDelivery.next_attempt_at <= now)


def _oldest_per_webhook(db_session: Session, now: datetime, limit: int, busy: frozenset[str]) -> list[str]:
    """The oldest due delivery of each of the ``limit`` webhooks waiting longest, not ``busy`` ones.

    One per webhook: a webhook's backlog never fills every thread ahead of another's one event.
    """
    waiting = db_session.execute(
        select(WebhookDelivery.webhook_id).where(_due(now), WebhookDelivery.webhook_id.not_in(busy))
        .group_by(WebhookDelivery.webhook_id).order_by(func.min(WebhookDelivery.next_attempt_at))
        .limit(limit)).scalars().all()
    return [db_session.scalar(select(WebhookDelivery.id).where(_due(now), WebhookDelivery.webhook_id == webhook_id)
                              .order_by(WebhookDelivery.next_attempt_at, WebhookDelivery.id).limit(1))
            for webhook_id in waiting]


def claim_due(*, db_session: Session, limit: int, busy: frozenset[str] = frozenset(),
              lease_seconds: float = LEASE_SECONDS) -> list[Claimed]:
    """Leases up to ``limit`` due deliveries (one per webhook, none of ``busy``'s) to this sender."""
    now = utcnow()
    picked = [i for i in _oldest_per_webhook(db_session, now, limit, busy) if i]
    if not picked:
        return []
    rows = db_session.execute(
        update(WebhookDelivery).where(WebhookDelivery.id.in_(picked), _due(now))
        .values(attempts=WebhookDelivery.attempts + 1, last_attempt_at=now,
                next_attempt_at=now + timedelta(seconds=lease_seconds))
        .returning(WebhookDelivery.id, WebhookDelivery.webhook_id, WebhookDelivery.attempts,
                   WebhookDelivery.payload, WebhookDelivery.created_at)
        .execution_options(synchronize_session=False)).all()
    hooks = {h.id: h for h in db_session.scalars(select(Webhook).where(Webhook.id.in_({r.webhook_id for r in rows})))}
    return [Claimed(r.id, r.webhook_id, hooks[r.webhook_id].url, hooks[r.webhook_id].secret, r.payload,
                    r.attempts, r.created_at) for r in rows if r.webhook_id in hooks]


def backoff(attempt: int) -> timedelta:
    """The wait after failed attempt ``attempt``, jittered."""
    base = BACKOFF_SECONDS[min(attempt, len(BACKOFF_SECONDS)) - 1]
    return timedelta(seconds=base * random.uniform(1 - JITTER, 1 + JITTER))


def record(*, db_session: Session, claimed: Claimed, status_code: int | None, error: str | None) -> str:
    """Writes the attempt's outcome; returns the delivery's status (pending: a retry is scheduled)."""
    now = utcnow()
    values: dict[str, Any] = {"last_status_code": status_code, "last_error": error}
    if status_code is not None and 200 <= status_code < 300:
        values.update(status=DELIVERED, delivered_at=now, next_attempt_at=None, last_error=None)
    elif now >= claimed.created_at + GIVE_UP_AFTER:
        values.update(status=FAILED, next_attempt_at=None)
    else:  # the last try falls on the give-up time itself, not up to a backoff past it
        values.update(status=PENDING,
                      next_attempt_at=min(now + backoff(claimed.attempt), claimed.created_at + GIVE_UP_AFTER))
    db_session.execute(
        update(WebhookDelivery)
        .where(WebhookDelivery.id == claimed.id, WebhookDelivery.attempts == claimed.attempt,
               WebhookDelivery.status == PENDING)
        .values(**values).execution_options(synchronize_session=False))
    return values["status"]
