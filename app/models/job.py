"""The jobs table: one row per submitted job, with its spec, progress, lease and end."""
from datetime import datetime, timezone
from typing import Any

from sqlalchemy import JSON, BigInteger, Boolean, ForeignKey, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from app.models.base import Base, UTCDateTime, utcnow

# enqueued_at of a waiting job whose message the broker did not take: older than any resend
# cutoff, so the next reaper sweep sends it, not one RESEND_AFTER_SECONDS later.
UNSENT = datetime(1970, 1, 1, tzinfo=timezone.utc)


class Job(Base):
    __tablename__ = "jobs"
    __table_args__ = (UniqueConstraint("tenant_id", "idempotency_key"),)

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id"), index=True)
    # A finished job outlives its dataset; the spec still names the dataset it used.
    dataset_id: Mapped[str | None] = mapped_column(
        ForeignKey("datasets.id", ondelete="SET NULL"), index=True
    )
    # A JobStatus, written only by app/jobs/lifecycle.py (which also sets a new job's).
    status: Mapped[str] = mapped_column(String(12), index=True)
    spec: Mapped[dict[str, Any]] = mapped_column(JSON)
    # Feature shape the model was built against: with the spec, enough to rebuild it.
    input_shape: Mapped[list[int]] = mapped_column(JSON)
    parameter_count: Mapped[int] = mapped_column(Integer)
    idempotency_key: Mapped[str | None] = mapped_column(String(200), default=None)
    request_hash: Mapped[str | None] = mapped_column(String(64), default=None)

    attempts: Mapped[int] = mapped_column(Integer, default=0)
    worker_id: Mapped[str | None] = mapped_column(String(200), default=None)
    lease_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    device: Mapped[str | None] = mapped_column(String(64), default=None)
    # The kind of worker the job waits for: gpu or cpu (app/workers/routing.py).
    queue: Mapped[str] = mapped_column(String(8), default="cpu", server_default="cpu")

    epoch: Mapped[int] = mapped_column(Integer, default=0)
    step: Mapped[int] = mapped_column(Integer, default=0)
    total_steps: Mapped[int] = mapped_column(Integer, default=0)
    latest_metrics: Mapped[dict[str, Any] | None] = mapped_column(JSON, default=None)
    error: Mapped[str | None] = mapped_column(Text, default=None)
    weights_path: Mapped[str | None] = mapped_column(String(500), default=None)
    # Bytes of the job's folder in the artifact store (weights, checkpoint, preprocessing, ONNX
    # export), measured when the job ends and after an export: the stored-bytes quota reads it.
    artifact_bytes: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    # Set by POST /cancel on a running job; its worker stops at the next step boundary.
    cancel_requested: Mapped[bool] = mapped_column(Boolean, default=False)
    # The step of the job's last checkpoint (jobs/<id>/checkpoint.pt), which a retry resumes.
    checkpoint_step: Mapped[int | None] = mapped_column(Integer, default=None)
    # When the job's message was last sent (None: at creation); a waiting job is sent
    # again once this is older than RESEND_AFTER_SECONDS.
    enqueued_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    # The dataset's class labels when the job was created, so predictions keep their
    # names after the dataset is deleted.
    classes: Mapped[list[Any] | None] = mapped_column(JSON, default=None)
    # The seq of the job's latest event (job_events); bumped under this row's lock.
    last_event_id: Mapped[int] = mapped_column(Integer, default=0, server_default="0")

    # A study's member: the study, the variant's label, its place in the study (0, 1, ...; a
    # search's Optuna trial number) and what it sets over the study's base spec (dotted paths).
    study_id: Mapped[str | None] = mapped_column(ForeignKey("studies.id"), index=True, default=None)
    variant: Mapped[str | None] = mapped_column(String(200), default=None)
    member: Mapped[int | None] = mapped_column(Integer, default=None)
    params: Mapped[dict[str, Any] | None] = mapped_column(JSON, default=None)
    # A member its worker trained in a pack (app/studies/packing.py): the pack's id (the job
    # whose claim formed it) and how many members it had then; None: it trained alone.
    pack_id: Mapped[str | None] = mapped_column(String(40), default=None)
    packed_with: Mapped[int | None] = mapped_column(Integer, default=None)

    # What the user calls it and tags it with (app/labels.py): metadata, not part of the spec.
    # A study's members carry their study's labels.
    name: Mapped[str | None] = mapped_column(String(200), default=None)
    labels: Mapped[dict[str, str] | None] = mapped_column(JSON, default=dict)

    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
