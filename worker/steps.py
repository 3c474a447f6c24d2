"""One optimization step (first-order or L-BFGS), gradient diagnostics and the divergence check."""
from collections.abc import Callable
from contextlib import AbstractContextManager

import torch
from torch import nn

from app.ml.conflicts import FP16_LBFGS
from app.ml.errors import SpecError
from app.ml.regularization import Regularization, clip_gradients, clip_weights, penalty, weights
from worker import direct


class Diverged(Exception):
    """The loss became NaN or Inf."""

    def __init__(self, epoch: int, step: int, value: float, note: str = ""):
        word = "nan" if value != value else ("inf" if value > 0 else "-inf")
        super().__init__(f"diverged at epoch {epoch} step {step}: loss became {word}{note}")
        self.epoch, self.step, self.value = epoch, step, value


def layer_norms(model: nn.Module, of_grads: bool) -> dict[str, torch.Tensor]:
    """L2 norm per top-level layer ("layers[i]") of its gradients or parameters, plus "total"."""
    groups: dict[str, list[torch.Tensor]] = {}
    for name, p in model.named_parameters():
        t = p.grad if of_grads else p
        if t is not None:
            groups.setdefault(f"layers[{name.split('.')[0]}]", []).append(t.detach())
    flat = [t for ts in groups.values() for t in ts]
    if not flat:
        return {}
    norms = iter(torch._foreach_norm(flat))
    out = {k: torch.stack([next(norms) for _ in ts]).norm() for k, ts in groups.items()}
    out["total"] = torch.stack(list(out.values())).norm()
    return out


def make_step(model: nn.Module, loss_fn: nn.Module, optimizer: torch.optim.Optimizer,
              reg: Regularization, autocast: Callable[[], AbstractContextManager] | None = None,
              scaler: torch.amp.GradScaler | None = None
              ) -> Callable[[torch.Tensor, torch.Tensor, bool], tuple]:
    """Returns step(xb, yb, diagnose) -> (data loss, grad norms or None).

    With ``autocast`` (worker/precision.py) the forward pass and the loss run under it; the
    l1/l2 penalty, the backward pass and the optimizer step do not. With ``scaler`` (fp16)
    the loss is scaled for the backward pass and the gradients unscaled right after it, so
    clipping and the diagnostics see the true gradients.
    """
    params = weights(model)
    if scaler is not None and isinstance(optimizer, torch.optim.LBFGS):
        raise SpecError("training.precision", FP16_LBFGS)  # a Trainer built without the pre-flight

    data_loss = direct.forward(model, loss_fn)

    def objective(xb, yb):
        if autocast is None:
            loss = data_loss(xb, yb)
        else:
            with autocast():
                loss = data_loss(xb, yb)
        pen = penalty(reg, params)
        return loss, (loss + pen if pen is not None else loss)

    every_param = [p for group in optimizer.param_groups for p in group["params"]]
    update = direct.update(optimizer)

    def zero_grad():
        # What optimizer.zero_grad() does (set_to_none), without its profiler scope and
        # dispatch: about 8 us a step, a few percent of a small model's step on a CPU.
        for p in every_param:
            p.grad = None

    def first_order(xb, yb, diagnose):
        zero_grad()
        loss, total = objective(xb, yb)
        direct.backward(total)
        grads = layer_norms(model, of_grads=True) if diagnose else None  # before clipping
        clip_gradients(reg, model)
        update()
        clip_weights(reg, model)
        return loss.detach(), grads

    def scaled(xb, yb, diagnose):
        # torch.amp's documented order: scale, backward, unscale_, (clip), step, update.
        # A step whose gradients overflowed is skipped and the scale halved.
        zero_grad()
        loss, total = objective(xb, yb)
        scaler.scale(total).backward()
        scaler.unscale_(optimizer)
        grads = layer_norms(model, of_grads=True) if diagnose else None  # before clipping
        clip_gradients(reg, model)
        scaler.step(optimizer)
        scaler.update()
        clip_weights(reg, model)
        return loss.detach(), grads

    def lbfgs(xb, yb, diagnose):
        first: list[torch.Tensor] = []

        def closure():
            optimizer.zero_grad()
            loss, total = objective(xb, yb)
            total.backward()
            clip_gradients(reg, model)
            if not first:
                first.append(loss.detach())
            return total

        optimizer.step(closure)
        clip_weights(reg, model)
        # The recorded loss is the one at the start of the step, as `loss = opt.step(closure)` gives.
        return first[0], (layer_norms(model, of_grads=True) if diagnose else None)

    if isinstance(optimizer, torch.optim.LBFGS):
        return lbfgs
    return first_order if scaler is None else scaled


def check_finite(losses: list[tuple[int, int, torch.Tensor]]) -> None:
    """Raises Diverged at the first non-finite loss among (epoch, step, loss); one sync per call."""
    if not losses:
        return
    values = torch.stack([l for _, _, l in losses])
    finite = torch.isfinite(values)
    if bool(finite.all()):
        return
    i = int((~finite).nonzero()[0])
    epoch, step, _ = losses[i]
    raise Diverged(epoch, step, float(values[i]))
