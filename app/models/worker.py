from datetime import datetime

from sqlalchemy import BigInteger, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from app.models.base import Base, UTCDateTime, utcnow


class Worker(Base):
    """One worker process (one GPU, or one CPU slot) as it last reported itself."""

    __tablename__ = "workers"

    # e.g. gpu0@host:1234: the device it owns, its host and the pid of `trainyard worker`.
    name: Mapped[str] = mapped_column(String(200), primary_key=True)
    host: Mapped[str] = mapped_column(String(200))
    pid: Mapped[int] = mapped_column(Integer)
    kind: Mapped[str] = mapped_column(String(8), index=True)  # gpu | cpu
    # The physical GPU index (CUDA_VISIBLE_DEVICES); None for a CPU worker.
    device_index: Mapped[int | None] = mapped_column(Integer, default=None)
    device_name: Mapped[str] = mapped_column(String(200))
    # GPUs it owns (CUDA_VISIBLE_DEVICES lists them, device_index is the first); 1 for a CPU worker.
    devices: Mapped[int] = mapped_column(Integer, default=1, server_default="1")
    # The GPU's memory, or the host's for a CPU worker.
    memory_bytes: Mapped[int | None] = mapped_column(BigInteger, default=None)
    queue: Mapped[str] = mapped_column(String(200))
    status: Mapped[str] = mapped_column(String(12), default="online")  # online | draining | stopped
    # Set by the training process when it claims a job, cleared when the job ends.
    current_job_id: Mapped[str | None] = mapped_column(String(40), default=None)
    started_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    heartbeat_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)
