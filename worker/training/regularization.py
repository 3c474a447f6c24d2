"""Regularization as applied each step and epoch: the l1/l2 penalty, gradient and weight
clipping, and early stopping (the spec classes live in app/ml/regularization.py).

Penalties and max-norm clipping act on weights (parameters with 2 or more dims:
linear, conv and recurrent weight matrices), not on biases or normalization scales.
"""
import copy
import math

import torch
from torch import nn

from app.ml.regularization import EarlyStopping, Regularization, early_stopping_monitor


def weights(model: nn.Module) -> list[nn.Parameter]:
    """The parameters penalties and max-norm clipping act on (init.freeze's layers excluded:
    they stay as copied, bit for bit)."""
    return [p for p in model.parameters() if p.dim() >= 2 and p.requires_grad]


def penalty(reg: Regularization, params: list[nn.Parameter]) -> torch.Tensor | None:
    """The l1/l2 term added to the data loss, or None when there is none."""
    terms = []
    if reg.l1:
        terms.append(reg.l1 * sum(p.abs().sum() for p in params))
    if reg.l2:
        terms.append(reg.l2 * sum(p.pow(2).sum() for p in params))
    return sum(terms) if terms else None


def clip_gradients(reg: Regularization, model: nn.Module) -> None:
    """Clip the gradients by their global norm or by value, as regularization.grad_clip says."""
    clip = reg.grad_clip
    if clip is None:
        return
    if clip.type == "norm":
        nn.utils.clip_grad_norm_(model.parameters(), clip.max_norm, norm_type=clip.norm_type)
    else:
        nn.utils.clip_grad_value_(model.parameters(), clip.clip_value)


@torch.no_grad()
def clip_weights(reg: Regularization, model: nn.Module) -> None:
    """Clamp every parameter, or scale each unit's incoming weights to at most max_norm."""
    clip = reg.weight_clip
    if clip is None:
        return
    if clip.type == "clamp":
        for p in model.parameters():
            if p.requires_grad:  # a frozen layer stays as copied
                p.clamp_(clip.min, clip.max)
        return
    for w in weights(model):
        # Row i holds unit i's incoming weights (out_features first in torch layouts).
        w.copy_(torch.renorm(w, p=2, dim=0, maxnorm=clip.max_norm))


class Regularizer:
    """One job's regularization, bound to its model: what the epoch function calls each step."""

    def __init__(self, reg: Regularization, model: nn.Module):
        self.reg, self.model = reg, model
        self.weights = weights(model)
        self.weight_names = [n for n, p in model.named_parameters() if p.dim() >= 2 and p.requires_grad]
        # Read once, and nothing entered when unset: clip_weights's no_grad context alone
        # costs about a microsecond a step.
        self.penalized = bool(reg.l1 or reg.l2)
        self.grad_clip, self.weight_clip = reg.grad_clip is not None, reg.weight_clip is not None

    def add_penalty(self, loss: torch.Tensor) -> torch.Tensor:
        """The data loss plus the l1/l2 penalty (computed in fp32, outside autocast)."""
        if not self.penalized:
            return loss
        return loss + penalty(self.reg, self.weights)

    def named_penalty(self, params: dict[str, torch.Tensor]) -> torch.Tensor | None:
        """The l1/l2 penalty of the given values of the model's named parameters (the weights
        among them): what Newton's Hessian includes (app/ml/optim/objective.py)."""
        return penalty(self.reg, [params[n] for n in self.weight_names]) if self.penalized else None

    def clip_gradients(self) -> None:
        if self.grad_clip:
            clip_gradients(self.reg, self.model)

    def clip_weights(self) -> None:
        if self.weight_clip:
            clip_weights(self.reg, self.model)


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
        """Record an epoch; True when training should stop."""
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
        """Put the best epoch's weights back, when restore_best asks for it."""
        if self.es.restore_best and self.best_state is not None:
            model.load_state_dict(self.best_state)
