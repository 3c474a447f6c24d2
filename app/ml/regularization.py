"""Regularization beyond the optimizer's own weight decay: penalties, clipping, early stopping.

Penalties and max-norm clipping act on weights (parameters with 2 or more dims:
linear, conv and recurrent weight matrices), not on biases or normalization scales.
"""
import copy
import math
from typing import Annotated, Literal, Union

import torch
from pydantic import Field, PositiveInt
from torch import nn

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


def weights(model: nn.Module) -> list[nn.Parameter]:
    return [p for p in model.parameters() if p.dim() >= 2]


def penalty(reg: Regularization, params: list[nn.Parameter]) -> torch.Tensor | None:
    """The l1/l2 term added to the data loss, or None when there is none."""
    terms = []
    if reg.l1:
        terms.append(reg.l1 * sum(p.abs().sum() for p in params))
    if reg.l2:
        terms.append(reg.l2 * sum(p.pow(2).sum() for p in params))
    return sum(terms) if terms else None


def clip_gradients(reg: Regularization, model: nn.Module) -> None:
    clip = reg.grad_clip
    if clip is None:
        return
    if clip.type == "norm":
        nn.utils.clip_grad_norm_(model.parameters(), clip.max_norm, norm_type=clip.norm_type)
    else:
        nn.utils.clip_grad_value_(model.parameters(), clip.clip_value)


@torch.no_grad()
def clip_weights(reg: Regularization, model: nn.Module) -> None:
    clip = reg.weight_clip
    if clip is None:
        return
    if clip.type == "clamp":
        for p in model.parameters():
            p.clamp_(clip.min, clip.max)
        return
    for w in weights(model):
        # Row i holds unit i's incoming weights (out_features first in torch layouts).
        w.copy_(torch.renorm(w, p=2, dim=0, maxnorm=clip.max_norm))


def early_stopping_monitor(es: EarlyStopping, has_validation: bool) -> str:
    if es.monitor == "auto":
        return "val_loss" if has_validation else "train_loss"
    return es.monitor


class EarlyStopper:
    """Tracks the monitored metric; says when patience ran out and keeps the best weights."""

    def __init__(self, es: EarlyStopping, has_validation: bool):
        self.es = es
        self.monitor = early_stopping_monitor(es, has_validation)
        self.sign = -1.0 if self.monitor == "val_accuracy" else 1.0  # minimize sign * value
        self.best = math.inf
        self.best_epoch = 0
        self.best_state: dict | None = None
        self.bad_epochs = 0

    def update(self, epoch: int, metrics: dict[str, float], model: nn.Module) -> bool:
        """Records an epoch; True when training should stop."""
        value = self.sign * metrics[self.monitor]
        if value < self.best - self.es.min_delta:
            self.best, self.best_epoch, self.bad_epochs = value, epoch, 0
            if self.es.restore_best:
                self.best_state = copy.deepcopy(model.state_dict())
            return False
        self.bad_epochs += 1
        return self.bad_epochs >= self.es.patience

    def state_dict(self) -> dict:
        return {"best": self.best, "best_epoch": self.best_epoch, "best_state": self.best_state,
                "bad_epochs": self.bad_epochs}

    def load_state_dict(self, state: dict) -> None:
        self.best, self.best_epoch = state["best"], state["best_epoch"]
        self.best_state, self.bad_epochs = state["best_state"], state["bad_epochs"]

    def restore(self, model: nn.Module) -> None:
        if self.es.restore_best and self.best_state is not None:
            model.load_state_dict(self.best_state)
