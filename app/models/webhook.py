"""The webhooks table (a tenant's receivers) and webhook_deliveries (the outbox: one row per event per receiver)."""
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, ForeignKey, Index, Integer, String, Text, text
from sqlalchemy.orm import Mapped, mapped_column

from app.models.base import Base, UTCDateTime, utcnow


class Webhook(Base):
    __tablename__ = "webhooks"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id"), index=True)
    url: Mapped[str] = mapped_column(String(2000))
    # Event types (app/webhooks/events.py EVENT_TYPES) this receiver is sent.
    events: Mapped[list[str]] = mapped_column(JSON)
    # "whsec_" + base64, kept as it is: the sender signs with it (a digest could not sign).
    # Shown to the client once, in the create's answer.
    secret: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class WebhookDelivery(Base):
    """One event for one webhook, inserted in the transaction that records the event.

    ``id`` is the Standard Webhooks message id (the ``webhook-id`` header), the same on every
    attempt, so a receiver can drop a repeat. ``next_attempt_at`` is both the schedule and the
    sender's lease: a claim moves it a lease ahead (app/webhooks/deliveries.py says why).
    """

    __tablename__ = "webhook_deliveries"
    # The sender's claim: pending rows due first. Partial, so delivered history costs it nothing.
    __table_args__ = (Index("ix_webhook_deliveries_due", "next_attempt_at",
                            postgresql_where=text("status = 'pending'"), sqlite_where=text("status = 'pending'")),)

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    webhook_id: Mapped[str] = mapped_column(ForeignKey("webhooks.id", ondelete="CASCADE"), index=True)
    event_type: Mapped[str] = mapped_column(String(40))
    payload: Mapped[dict[str, Any]] = mapped_column(JSON)
    status: Mapped[str] = mapped_column(String(12))  # pending | delivered | failed
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_status_code: Mapped[int | None] = mapped_column(Integer, default=None)
    last_error: Mapped[str | None] = mapped_column(Text, default=None)
    next_attempt_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=utcnow)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_attempt_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    delivered_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
