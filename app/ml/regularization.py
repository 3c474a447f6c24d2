"""The regularization spec beyond the optimizer's own weight decay: penalties, clipping, early stopping.

Penalties and max-norm clipping act on weights (parameters with 2 or more dims:
linear, conv and recurrent weight matrices), not on biases or normalization scales.
worker/training/regularization.py applies them each step.
"""
from typing import Annotated, Literal, Union

from pydantic import Field, PositiveInt

from app.ml.strict import StrictModel

NonNeg = Annotated[float, Field(ge=0)]


class GradClipNorm(StrictModel):
    type: Literal["norm"]
    max_norm: Annotated[float, Field(gt=0)]
    norm_type: Annotated[float, Field(gt=0)] = 2.0


class GradClipValue(StrictModel):
    type: Literal["value"]
    clip_value: Annotated[float, Field(gt=0)]


class WeightMaxNorm(StrictModel):
    """Max-norm constraint: each unit's incoming weight vector is scaled down to max_norm."""

    type: Literal["max_norm"]
    max_norm: Annotated[float, Field(gt=0)]


class WeightClamp(StrictModel):
    """Weight clipping: every parameter clamped to [min, max] after each step."""

    type: Literal["clamp"]
    min: float
    max: float


class EarlyStopping(StrictModel):
    # auto: val_loss when there is a validation set, else train_loss.
    monitor: Literal["auto", "val_loss", "train_loss", "val_accuracy"] = "auto"
    patience: PositiveInt = 10
    min_delta: NonNeg = 0.0
    restore_best: bool = True


class Regularization(StrictModel):
    l1: NonNeg = 0.0  # adds l1 * sum(|w|) to the loss
    l2: NonNeg = 0.0  # adds l2 * sum(w^2) to the loss (not decoupled weight decay)
    grad_clip: Annotated[Union[GradClipNorm, GradClipValue], Field(discriminator="type")] | None = None
    weight_clip: Annotated[Union[WeightMaxNorm, WeightClamp], Field(discriminator="type")] | None = None
    early_stopping: EarlyStopping | None = None


def early_stopping_monitor(es: EarlyStopping, has_validation: bool) -> str:
    """The metric early stopping watches: auto is val_loss with a validation set, else train_loss."""
    if es.monitor == "auto":
        return "val_loss" if has_validation else "train_loss"
    return es.monitor
