from datetime import datetime
from typing import Any

from sqlalchemy import JSON, ForeignKey, Index, Integer, String, text
from sqlalchemy.orm import Mapped, mapped_column

from app.models.base import Base, UTCDateTime, utcnow


class JobEvent(Base):
    """One entry of a job's event log: a status change or a metric point.

    ``seq`` counts 1, 2, 3... per job. It is taken from ``jobs.last_event_id`` under the
    job row's lock (see app/jobs/events.py), so within one job the order of seq is the
    order of commits: a reader that has seen seq N never later finds a new N-1.
    """

    __tablename__ = "job_events"
    # GET /v1/jobs/{id} reads a job's attempt history from its status events; a long job
    # has thousands of metric events beside its few status ones. A partial index keeps
    # that read a few rows whatever the job's length, and costs metric inserts nothing.
    __table_args__ = (Index("ix_job_events_status", "job_id", "seq",
                            postgresql_where=text("kind = 'status'"),
                            sqlite_where=text("kind = 'status'")),)

    job_id: Mapped[str] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"), primary_key=True)
    seq: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    kind: Mapped[str] = mapped_column(String(16))  # status | step | epoch
    data: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
