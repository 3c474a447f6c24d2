"""The step kinds: how a step turns the gradients the epoch function computes into an update.

The epoch function (worker/training/loop.py) writes one gradient evaluation out in full
(zero grad, forward, penalty, backward, unscale, diagnostics, clipping) and hands it to
``step_kind.update(gradients, batch)``. The kinds differ only in the lines that must differ:

- GradientStep: first-order optimizers (SGD, Adam, ...): evaluate once, then step.
- ScaledStep: the same under fp16's gradient scaler: a scaled backward, an unscale, and the
  scaler's step (skipped on overflow) and scale update.
- ClosureStep: closure-driven optimizers (L-BFGS, conjugate gradient, scaled conjugate
  gradient): the optimizer evaluates as often as it needs.
- CurvatureStep: Newton and Levenberg-Marquardt: the gradients once (the loss reported and
  the diagnostics), then the optimizer steps from the exact derivatives of the batch's loss as
  a function of the weights (app/ml/optim/objective.py).

With ``direct`` the forward, backward, update and zero-grad calls come from
worker/training/direct.py; without it they are the ordinary PyTorch calls.
"""
from collections.abc import Callable

import torch
from torch import nn

from app.ml.conflicts import FP16_LBFGS
from app.ml.errors import SpecError
from app.ml.optim.conjugate_gradient import ConjugateGradient
from app.ml.optim.levenberg_marquardt import LevenbergMarquardt
from app.ml.optim.newton import Newton
from app.ml.optim.objective import Objective, Penalty
from app.ml.optim.scaled_conjugate_gradient import ScaledConjugateGradient
from worker.training import direct as fast

# The gradient evaluation the epoch function builds: (data loss, loss with penalty).
Gradients = Callable[[], tuple[torch.Tensor, torch.Tensor]]
Batch = tuple[torch.Tensor, torch.Tensor]  # (inputs, targets)

CLOSURE_DRIVEN: tuple[type[torch.optim.Optimizer], ...] = (torch.optim.LBFGS, ConjugateGradient,
                                                           ScaledConjugateGradient)
CURVATURE_DRIVEN: tuple[type[torch.optim.Optimizer], ...] = (Newton, LevenbergMarquardt)


class GradientStep:
    """A first-order step: the gradients once, then the optimizer's update."""

    def __init__(self, model: nn.Sequential, loss_fn: nn.Module, optimizer: torch.optim.Optimizer,
                 *, direct: bool):
        self.optimizer = optimizer
        if direct:
            self.forward = fast.forward(model, loss_fn)
            self.backward = fast.backward
            self.zero_grad = fast.zero_grad(optimizer)
            self.optimizer_step = fast.update(optimizer)
        else:
            self.forward = lambda xb, yb: loss_fn(model(xb), yb)
            self.backward = torch.Tensor.backward
            self.zero_grad = lambda: optimizer.zero_grad(set_to_none=True)
            self.optimizer_step = optimizer.step

    def unscale(self) -> None:
        """Nothing to undo: the gradients are the true ones."""

    def update(self, gradients: Gradients, batch: Batch) -> torch.Tensor:
        """Evaluate the gradients, step the optimizer; return the data loss, detached."""
        loss, _ = gradients()
        self.optimizer_step()
        return loss.detach()


class ScaledStep(GradientStep):
    """fp16: torch.amp's documented order: scale, backward, unscale_, (clip), step, update.

    A step whose gradients overflowed is skipped and the scale halved.
    """

    def __init__(self, model: nn.Sequential, loss_fn: nn.Module, optimizer: torch.optim.Optimizer,
                 scaler: torch.amp.GradScaler, *, direct: bool):
        super().__init__(model, loss_fn, optimizer, direct=direct)
        self.scaler = scaler
        self.backward = lambda total: scaler.scale(total).backward()

    def unscale(self) -> None:
        """Unscale the gradients, so that clipping and the diagnostics see the true ones."""
        self.scaler.unscale_(self.optimizer)

    def update(self, gradients: Gradients, batch: Batch) -> torch.Tensor:
        """Evaluate the gradients, step through the scaler, update the scale."""
        loss, _ = gradients()
        self.scaler.step(self.optimizer)
        self.scaler.update()
        return loss.detach()


class ClosureStep(GradientStep):
    """A closure-driven step (L-BFGS): the optimizer evaluates the gradients as often as it needs."""

    def update(self, gradients: Gradients, batch: Batch) -> torch.Tensor:
        """Step with the evaluation as the closure; return the loss at the start of the step,
        as ``loss = optimizer.step(closure)`` gives."""
        first: list[torch.Tensor] = []

        def closure() -> torch.Tensor:
            loss, total = gradients()
            if not first:
                first.append(loss.detach())
            return total

        self.optimizer.step(closure)
        return first[0]


class CurvatureStep(GradientStep):
    """Newton, Levenberg-Marquardt: the optimizer differentiates the batch's loss as a function of
    the weights (with the same l1/l2 penalty the gradients add)."""

    def __init__(self, model: nn.Sequential, loss_fn: nn.Module, optimizer: torch.optim.Optimizer,
                 penalty: Penalty | None, *, direct: bool):
        super().__init__(model, loss_fn, optimizer, direct=direct)
        self.model, self.loss_fn, self.penalty = model, loss_fn, penalty

    def update(self, gradients: Gradients, batch: Batch) -> torch.Tensor:
        """The loss at the start of the step (and the gradients the diagnostics read), then the step."""
        loss, _ = gradients()
        params = self.optimizer.param_groups[0]["params"]
        self.optimizer.step(Objective(self.model, self.loss_fn, *batch, params, self.penalty))
        return loss.detach()


def make_step(model: nn.Sequential, loss_fn: nn.Module, optimizer: torch.optim.Optimizer,
              scaler: torch.amp.GradScaler | None, *, direct: bool, penalty: Penalty | None = None) -> GradientStep:
    """Return the step kind the optimizer and training.precision need; ``penalty`` is the l1/l2
    term as a function of the named weights (for the curvature methods)."""
    if isinstance(optimizer, CURVATURE_DRIVEN):
        if scaler is not None:
            raise SpecError("training.precision", "newton and levenberg_marquardt train in fp32")
        return CurvatureStep(model, loss_fn, optimizer, penalty, direct=direct)
    if isinstance(optimizer, CLOSURE_DRIVEN):
        if scaler is not None:
            raise SpecError("training.precision", FP16_LBFGS)  # a Trainer built without the pre-flight
        return ClosureStep(model, loss_fn, optimizer, direct=direct)
    if scaler is not None:
        return ScaledStep(model, loss_fn, optimizer, scaler, direct=direct)
    return GradientStep(model, loss_fn, optimizer, direct=direct)
