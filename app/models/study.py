"""The studies table: one row per study (many jobs that answer one comparison), and its event log."""
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, ForeignKey, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from app.models.base import Base, UTCDateTime, utcnow


class Study(Base):
    __tablename__ = "studies"
    __table_args__ = (UniqueConstraint("tenant_id", "idempotency_key"),)

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id"), index=True)
    name: Mapped[str | None] = mapped_column(String(200), default=None)
    # String key/values (app/labels.py); its members get them too.
    labels: Mapped[dict[str, str] | None] = mapped_column(JSON, default=dict)
    # A StudyStatus, written only by app/studies/lifecycle.py.
    status: Mapped[str] = mapped_column(String(12), index=True)
    # The request as given (base spec, variants/grid/search, seeds, objective), for GET and reruns.
    spec: Mapped[dict[str, Any]] = mapped_column(JSON)
    kind: Mapped[str] = mapped_column(String(8))  # variants (variants and/or grid) | search
    # How many members the study runs in all (a search: its trials).
    planned: Mapped[int] = mapped_column(Integer)
    # Search trials whose sampled spec failed the pre-flight check: they count toward the trials.
    refused: Mapped[int] = mapped_column(Integer, default=0)
    # A retried POST with the same Idempotency-Key gets this study back (a different body: 409).
    idempotency_key: Mapped[str | None] = mapped_column(String(200), default=None)
    request_hash: Mapped[str | None] = mapped_column(String(64), default=None)
    # The seq of the study's latest event (study_events); bumped under this row's lock.
    last_event_id: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)


class StudyEvent(Base):
    """One entry of a study's event log: a member's status change, or the study's own.

    ``seq`` counts 1, 2, 3... per study, taken from ``studies.last_event_id`` under the study
    row's lock, as a job's events are (app/jobs/events.py says why).
    """

    __tablename__ = "study_events"

    study_id: Mapped[str] = mapped_column(ForeignKey("studies.id", ondelete="CASCADE"), primary_key=True)
    seq: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    kind: Mapped[str] = mapped_column(String(16))  # member | status
    data: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
