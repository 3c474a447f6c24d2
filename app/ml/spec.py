"""The JSON contract of a training job: model, loss, optimizer, training settings.

Every model forbids unknown fields, so a typo is an error naming the field
rather than a silently ignored option.
"""
from typing import Annotated, Literal, Union

from pydantic import (Field, PlainValidator, PositiveInt, ValidationInfo, WithJsonSchema,
                      field_validator, model_serializer)

from app.ml.data_spec import DataOptions, DatasetRef
from app.ml.layers.init import Init
from app.ml.layers.specs import Layer
from app.ml.losses import Loss, LossSpec, loss_spec  # noqa: F401  (re-exported: S.LossSpec, S.Adam, ...)
from app.ml.optimizers import (SGD, Adadelta, Adagrad, Adam, Adamax, AdamW, ConjugateGradient,  # noqa: F401
                               LBFGS, LevenbergMarquardt, NAdam, Newton, Optimizer, RAdam, RMSprop, Rprop,
                               ScaledConjugateGradient)
from app.ml.regularization import Regularization
from app.ml.schedules import Schedule
from app.ml.source_spec import Distill, InitFrom
from app.ml.strict import StrictModel

__all__ = ["JobSpec", "Layer", "ModelSpec"]


class ModelSpec(StrictModel):
    layers: list[Layer] = Field(min_length=1)
    init: Init | None = None  # default for every layer with weights (docs/layers.md)


# ---- training -----------------------------------------------------------------

def _batch_size(value):
    if value == "full":
        return value
    if isinstance(value, int) and not isinstance(value, bool) and value > 0:
        return value
    raise ValueError("must be a positive integer, or 'full' for full-batch gradient descent")


BatchSize = Annotated[
    Union[int, Literal["full"]],
    PlainValidator(_batch_size),
    WithJsonSchema({"anyOf": [{"type": "integer", "minimum": 1}, {"const": "full"}]}),
]


class TrainingSpec(StrictModel):
    epochs: PositiveInt = 10
    # An integer, or "full" for full-batch gradient descent; 1 is per-sample SGD.
    batch_size: BatchSize = 32
    shuffle: bool = True
    validation_split: float = Field(default=0.0, ge=0.0, lt=1.0)
    seed: int = Field(default=0, ge=0, le=2**63 - 1)
    log_every_steps: PositiveInt = 10
    device: Literal["auto", "cpu", "cuda"] = "auto"
    precision: Literal["fp32", "bf16", "fp16"] = Field(
        default="fp32",
        description="fp32: full precision. bf16 or fp16: the forward pass and the loss run under "
                    "torch.autocast in that dtype (fp16 with a gradient scaler); the weights stay "
                    "fp32. Mixed precision needs a GPU: on the CPU it is slower than fp32.")
    # A NaN/Inf loss fails the job, or ("rollback") goes back to the start of the epoch,
    # halves the learning rate and tries again, at most max_rollbacks times.
    on_divergence: Literal["fail", "rollback"] = "fail"
    # A checkpoint every N epochs (0: only the time-based ones, every CHECKPOINT_SECONDS):
    # a lost worker costs at most the training since the last one.
    checkpoint_every: Annotated[int, Field(ge=0)] = 10
    # Wall-clock limit for one attempt's training; the server's MAX_JOB_SECONDS caps it.
    max_seconds: Annotated[float, Field(gt=0)] | None = None
    max_rollbacks: Annotated[int, Field(ge=1, le=20)] = 3
    devices: Annotated[int, Field(ge=1, le=64)] = Field(
        default=1,
        description="Data-parallel ranks (torch.distributed DistributedDataParallel): each global batch is "
                    "split across this many devices (GPUs with NCCL, CPU processes with gloo) and their "
                    "gradients averaged, so the training equals one process's (docs/equivalence.md).")

    @model_serializer(mode="wrap")
    def _without_one_device(self, handler):
        # Stored (and its Idempotency-Key hashed) as before the field existed when it is 1, so an
        # older worker, whose spec forbids unknown fields, still reads a single-device job.
        data = handler(self)
        if isinstance(data, dict) and data.get("devices") == 1:
            data.pop("devices")
        return data


class JobSpec(StrictModel):
    """What POST /v1/jobs takes: the dataset (an id or a builtin) and how to train on it."""

    dataset: DatasetRef
    model: ModelSpec
    loss: LossSpec
    optimizer: Optimizer
    training: TrainingSpec = TrainingSpec()
    schedule: Schedule | None = None
    regularization: Regularization = Regularization()
    # After training, so its check can see training.validation_split.
    data: DataOptions = DataOptions()
    # Start from a succeeded job's weights (warm start, fine-tuning; app/ml/warm_start.py).
    init: InitFrom | None = None
    # Learn from a succeeded job's softened outputs as well as the labels (app/ml/distill.py).
    distill: Distill | None = None

    @model_serializer(mode="wrap")
    def _without_unused_sources(self, handler):
        # A job without init or distill is stored (and its Idempotency-Key hashed) as before they
        # existed, so a client or worker of an older version still reads its served spec.
        data = handler(self)
        for key in ("init", "distill"):
            if isinstance(data, dict) and data.get(key) is None:
                data.pop(key, None)
        return data

    @field_validator("data")
    @classmethod
    def _one_validation_source(cls, data: DataOptions, info: ValidationInfo) -> DataOptions:
        training = info.data.get("training")
        if data.validation_dataset and training is not None and training.validation_split > 0:
            raise ValueError("validation_dataset and training.validation_split both hold out validation "
                             "rows; set training.validation_split to 0 to validate on validation_dataset")
        return data
