from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from app.jobs.lifecycle import JobStatus
from app.labels import Labels, Name
from app.ml.spec import JobSpec


class Progress(BaseModel):
    epoch: int
    epochs: int
    step: int
    total_steps: int


class AttemptRead(BaseModel):
    """One try at training the job, from the job's events."""

    attempt: int
    worker: str | None
    started_at: datetime
    ended_at: datetime | None = None
    outcome: str | None = None  # succeeded | failed | cancelled | retrying (lost or handed back)
    reason: str | None = None


class JobCreate(JobSpec):
    """What POST /v1/jobs takes: the job spec, and beside its fields the job's name and labels.

    The name and labels are the job's, not the spec's: the stored spec (GET /v1/jobs/{id}/spec)
    is only the JobSpec part, as a rebuilt model and a study's base need it."""

    name: Name | None = None
    labels: Labels = {}

    def spec(self) -> JobSpec:
        """The JobSpec part, as validated (not validated again)."""
        return JobSpec.model_construct(_fields_set=self.model_fields_set - {"name", "labels"},
                                       **{f: getattr(self, f) for f in JobSpec.model_fields})


class JobRead(BaseModel):
    id: str
    name: str | None = None
    labels: dict[str, str] = {}
    status: JobStatus
    dataset_id: str | None
    parameter_count: int
    progress: Progress
    latest_metrics: dict[str, Any] | None
    device: str | None
    attempts: int
    error: str | None  # on failure the reason; while retrying, why the last attempt was lost
    # While waiting: why, e.g. "waiting: no GPU worker online" (GET and POST only).
    waiting_reason: str | None = None
    cancel_requested: bool = False  # a running job asked to stop at its next step
    checkpoint_step: int | None = None  # where a retry would resume
    study_id: str | None = None  # a study's member: its study and its variant's label
    variant: str | None = None
    # A member its worker trained in a pack (docs/studies.md "Packed members"): the pack's id (the
    # member whose claim formed it) and how many members it had; None: it trained alone.
    pack_id: str | None = None
    packed_with: int | None = None
    attempt_history: list[AttemptRead] | None = None  # in GET /v1/jobs/{id} only
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None


class JobCreated(JobRead):
    warnings: list[str] = []


class JobPage(BaseModel):
    items: list[JobRead]
    total: int
    limit: int
    offset: int


class LayerPlan(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    index: int
    path: str  # model.layers[2].layers[0] for a layer inside a residual block
    type: str
    input_shape: list[int]
    output_shape: list[int]
    parameters: int
    layers: list["LayerPlan"] = []  # a residual block's own layers


class PlanRead(BaseModel):
    """What a dry run reports: the network as it would be built, and the training it implies."""

    model_config = ConfigDict(from_attributes=True)
    valid: bool = True
    layers: list[LayerPlan]
    parameter_count: int
    output_shape: list[int]
    train_rows: int
    validation_rows: int
    batch_size: int
    steps_per_epoch: int
    total_steps: int
    flops_per_step: int  # forward + backward of one batch
    memory_bytes: int  # estimated training memory: parameters, gradients, optimizer state, activations
    data_bytes: int = 0  # the training (and validation) dataset's arrays as stored
    data_path: str = "in_memory"  # in_memory | memory_mapped: how the worker will hold them (WORKER_MEMORY_BYTES)
    data_note: str = ""  # that, in a sentence
    warnings: list[str]


class EpochPoint(BaseModel):
    epoch: int
    step: int
    train_loss: float | None = None
    grad_norm: float | None = None
    grad_norms: dict[str, float | None] | None = None  # None: not finite (an exploding gradient)
    param_norm: float | None = None
    param_norms: dict[str, float | None] | None = None
    rollbacks: int | None = None
    val_loss: float | None = None
    val_accuracy: float | None = None
    lr: float | None = None  # the rate of the epoch's first batch (all its batches, per epoch)
    lr_last: float | None = None  # per-batch schedules (one_cycle): the last batch's rate
    lr_mean: float | None = None  # per-batch schedules: the mean over the epoch's batches
    epoch_seconds: float | None = None
    samples_per_second: float | None = None


class StepPoint(BaseModel):
    epoch: int
    step: int
    train_loss: float | None = None
    lr: float | None = None  # the rate this step used; None in points from before it was recorded


class MetricsRead(BaseModel):
    job_id: str
    epochs: list[EpochPoint]
    steps: list[StepPoint]
    last_step: int
    # The job's newest event when this history was read: GET /v1/jobs/{id}/events?after= it
    # streams what came since without a gap (a point already here may come once more).
    last_event_id: int = 0


class SpecRead(BaseModel):
    """Everything needed to rebuild the trained model: the spec and the input shape."""

    job_id: str
    spec: dict[str, Any]
    input_shape: list[int]
    # What the job's data options fitted (feature mean/std, ...): apply it to inputs first.
    preprocessing: dict[str, Any] | None = None


class PredictRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"inputs": [[0.5, 1.0, -0.2, 2.0]]}]})
    inputs: list[Any] = Field(min_length=1, description="rows of features: shape [n, *input_shape]")


class PredictRead(BaseModel):
    """Model outputs; for cross_entropy and bce_with_logits also probabilities and labels."""

    job_id: str
    outputs: list[Any]
    probabilities: list[Any] | None = None
    labels: list[Any] | None = None
