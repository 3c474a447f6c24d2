"""The JSON contract of a training job: model, loss, optimizer, training settings.

Every model forbids unknown fields, so a typo is an error naming the field
rather than a silently ignored option.
"""
from typing import Annotated, Literal, Union

from pydantic import Field, PlainValidator, PositiveInt, ValidationInfo, WithJsonSchema, field_validator

from app.ml.layers.specs import Layer
from app.ml.strict import StrictModel

__all__ = ["JobSpec", "Layer", "ModelSpec"]


class ModelSpec(StrictModel):
    layers: list[Layer] = Field(min_length=1)


# ---- loss ---------------------------------------------------------------------

class LossSpec(StrictModel):
    type: Literal["mse", "cross_entropy", "bce_with_logits", "l1"]


# ---- optimizers: defaults are PyTorch's own -------------------------------------

Betas = tuple[Annotated[float, Field(ge=0, lt=1)], Annotated[float, Field(ge=0, lt=1)]]
Lr = Annotated[float, Field(gt=0)]
NonNeg = Annotated[float, Field(ge=0)]


class SGD(StrictModel):
    type: Literal["sgd"]
    lr: Lr = 1e-3
    momentum: NonNeg = 0.0
    dampening: NonNeg = 0.0
    nesterov: bool = False
    weight_decay: NonNeg = 0.0

    @field_validator("nesterov")
    @classmethod
    def _nesterov_needs_momentum(cls, nesterov: bool, info: ValidationInfo) -> bool:
        if nesterov and (info.data.get("momentum", 0) <= 0 or info.data.get("dampening", 0) != 0):
            raise ValueError("nesterov requires momentum > 0 and dampening = 0")
        return nesterov


class Adam(StrictModel):
    type: Literal["adam"]
    lr: Lr = 1e-3
    betas: Betas = (0.9, 0.999)
    eps: Annotated[float, Field(gt=0)] = 1e-8
    weight_decay: NonNeg = 0.0
    amsgrad: bool = False


class AdamW(StrictModel):
    type: Literal["adamw"]
    lr: Lr = 1e-3
    betas: Betas = (0.9, 0.999)
    eps: Annotated[float, Field(gt=0)] = 1e-8
    weight_decay: NonNeg = 1e-2
    amsgrad: bool = False


class RMSprop(StrictModel):
    type: Literal["rmsprop"]
    lr: Lr = 1e-2
    alpha: Annotated[float, Field(ge=0, lt=1)] = 0.99
    eps: Annotated[float, Field(gt=0)] = 1e-8
    weight_decay: NonNeg = 0.0
    momentum: NonNeg = 0.0
    centered: bool = False


class Adagrad(StrictModel):
    type: Literal["adagrad"]
    lr: Lr = 1e-2
    lr_decay: NonNeg = 0.0
    weight_decay: NonNeg = 0.0
    initial_accumulator_value: NonNeg = 0.0
    eps: Annotated[float, Field(gt=0)] = 1e-10


class Adadelta(StrictModel):
    type: Literal["adadelta"]
    lr: Lr = 1.0
    rho: Annotated[float, Field(ge=0, le=1)] = 0.9
    eps: Annotated[float, Field(gt=0)] = 1e-6
    weight_decay: NonNeg = 0.0


Optimizer = Annotated[
    Union[SGD, Adam, AdamW, RMSprop, Adagrad, Adadelta], Field(discriminator="type")
]


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


class JobSpec(StrictModel):
    """What POST /v1/jobs takes: the dataset id and how to train on it."""

    dataset: str = Field(min_length=1, max_length=200)
    model: ModelSpec
    loss: LossSpec
    optimizer: Optimizer
    training: TrainingSpec = TrainingSpec()
