"""Loss specs and the builder. Every loss averages over the batch (reduction="mean")."""
from typing import Annotated, Literal, Union

import torch
from pydantic import Field, TypeAdapter
from torch import nn

from app.ml.strict import StrictModel

PositiveFloat = Annotated[float, Field(gt=0)]


class MSE(StrictModel):
    type: Literal["mse"]


class L1(StrictModel):
    type: Literal["l1"]


class Huber(StrictModel):
    type: Literal["huber"]
    delta: PositiveFloat = 1.0


class CrossEntropy(StrictModel):
    """Takes logits; applies log-softmax itself."""

    type: Literal["cross_entropy"]
    label_smoothing: Annotated[float, Field(ge=0, lt=1)] = 0.0
    # One weight per class, to count rare classes more.
    weight: list[PositiveFloat] | None = Field(default=None, min_length=1)


class BCEWithLogits(StrictModel):
    """Takes logits; applies the sigmoid itself. Targets in [0, 1]."""

    type: Literal["bce_with_logits"]
    # One weight per output column for the positive class.
    pos_weight: list[PositiveFloat] | None = Field(default=None, min_length=1)


class NLL(StrictModel):
    """Takes log-probabilities: end the network with log_softmax."""

    type: Literal["nll"]
    weight: list[PositiveFloat] | None = Field(default=None, min_length=1)


Loss = Annotated[Union[MSE, L1, Huber, CrossEntropy, BCEWithLogits, NLL], Field(discriminator="type")]
LossSpec = Loss

# Losses whose targets are one integer class label per row.
CLASS_LABEL_LOSSES = ("cross_entropy", "nll")


def _tensor(values: list[float] | None) -> torch.Tensor | None:
    return None if values is None else torch.tensor(values, dtype=torch.float32)


LOSS_BUILDERS = {
    "mse": lambda l: nn.MSELoss(),
    "l1": lambda l: nn.L1Loss(),
    "huber": lambda l: nn.HuberLoss(delta=l.delta),
    "cross_entropy": lambda l: nn.CrossEntropyLoss(weight=_tensor(l.weight),
                                                   label_smoothing=l.label_smoothing),
    "bce_with_logits": lambda l: nn.BCEWithLogitsLoss(pos_weight=_tensor(l.pos_weight)),
    "nll": lambda l: nn.NLLLoss(weight=_tensor(l.weight)),
}


def build_loss(loss: Loss) -> nn.Module:
    return LOSS_BUILDERS[loss.type](loss)


_ADAPTER = TypeAdapter(Loss)


def loss_spec(type: str, **options) -> Loss:
    """A validated loss spec, e.g. loss_spec("huber", delta=0.5)."""
    return _ADAPTER.validate_python({"type": type, **options})
