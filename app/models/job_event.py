from datetime import datetime
from typing import Any

from sqlalchemy import JSON, ForeignKey, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from app.models.base import Base, UTCDateTime, utcnow


class JobEvent(Base):
    """One entry of a job's event log: a status change or a metric point.

    ``seq`` counts 1, 2, 3... per job. It is taken from ``jobs.last_event_id`` under the
    job row's lock (see app/jobs/events.py), so within one job the order of seq is the
    order of commits: a reader that has seen seq N never later finds a new N-1.
    """

    __tablename__ = "job_events"

    job_id: Mapped[str] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"), primary_key=True)
    seq: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    kind: Mapped[str] = mapped_column(String(16))  # status | step | epoch
    data: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
