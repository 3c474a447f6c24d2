"""The training loop. It computes exactly what docs/equivalence.md's plain loop does.

Order of random draws, all from the job's seed:
1. ``torch.manual_seed(seed)``, then the model is built on the CPU in spec order;
2. a ``torch.Generator`` seeded with ``seed`` draws the validation split (only
   when validation_split > 0), then one permutation per epoch when shuffling;
3. dropout draws from the global generator, as in any PyTorch loop.
"""
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

from app.ml import spec as S
from app.ml.build import build_loss, build_model, build_optimizer
from app.ml.data import split_indices, targets_for_loss

EVAL_CHUNK = 8192


class Stopped(Exception):
    """Raised when the job's stop hook asks the loop to end early."""


@dataclass
class Hooks:
    # Called with metric points (plain floats) and the progress reached.
    flush: Callable[[list[dict], int, int], None] = lambda points, epoch, step: None
    should_stop: Callable[[], bool] = lambda: False
    flush_seconds: float = 1.0


@dataclass
class _Pending:
    """Metric points whose values are still tensors on the device: read back once per flush."""

    points: list[dict] = field(default_factory=list)

    def materialize(self) -> list[dict]:
        tensors = [v for p in self.points for v in p.values() if isinstance(v, torch.Tensor)]
        floats = iter(torch.stack(tensors).float().tolist()) if tensors else iter(())
        out = [{k: (next(floats) if isinstance(v, torch.Tensor) else v) for k, v in p.items()}
               for p in self.points]
        self.points = []
        return out


def resolve_device(requested: str) -> torch.device:
    if requested == "cuda" or (requested == "auto" and torch.cuda.is_available()):
        if not torch.cuda.is_available():
            raise RuntimeError("the job asks for device cuda, but this worker has no GPU")
        return torch.device("cuda")
    return torch.device("cpu")


def _evaluate(model, loss_fn, x, y, loss_type) -> dict:
    model.eval()
    total = torch.zeros((), device=x.device)
    correct = torch.zeros((), device=x.device)
    with torch.no_grad():
        for i in range(0, len(x), EVAL_CHUNK):
            out, yb = model(x[i:i + EVAL_CHUNK]), y[i:i + EVAL_CHUNK]
            total += loss_fn(out, yb) * len(yb)
            if loss_type == "cross_entropy":
                correct += (out.argmax(dim=1) == yb).sum()
            elif loss_type == "bce_with_logits":
                correct += ((out > 0) == (yb > 0.5)).float().mean(dim=1).sum()
    model.train()
    point = {"val_loss": total / len(x)}
    if loss_type in ("cross_entropy", "bce_with_logits"):
        point["val_accuracy"] = correct / len(x)
    return point


@dataclass
class Split:
    """The tensors one job trains and validates on, already on the job's device."""

    x_train: torch.Tensor
    y_train: torch.Tensor
    x_val: torch.Tensor | None
    y_val: torch.Tensor | None


def prepare_data(spec: S.JobSpec, x: np.ndarray, y: np.ndarray, gen: torch.Generator,
                 device: torch.device) -> Split:
    """Splits (x, y) with the job's generator and shapes the targets for the loss."""
    X = torch.as_tensor(x, dtype=torch.float32)
    Y = targets_for_loss(y, spec.loss.type)
    train_idx, val_idx = split_indices(len(X), spec.training.validation_split, gen)
    if val_idx is None:
        return Split(X[train_idx].to(device), Y[train_idx].to(device), None, None)
    return Split(X[train_idx].to(device), Y[train_idx].to(device),
                 X[val_idx].to(device), Y[val_idx].to(device))


def train(spec: S.JobSpec, x: np.ndarray, y: np.ndarray, device: torch.device,
          hooks: Hooks | None = None) -> nn.Module:
    """Trains the spec's model on (x, y) and returns it, on the CPU."""
    hooks = hooks or Hooks()
    t = spec.training
    torch.manual_seed(t.seed)
    gen = torch.Generator().manual_seed(t.seed)
    model = build_model(spec.model, x.shape[1:]).to(device)
    loss_fn = build_loss(spec.loss)
    optimizer = build_optimizer(spec.optimizer, model.parameters())

    data = prepare_data(spec, x, y, gen, device)
    x_train, y_train, x_val, y_val = data.x_train, data.y_train, data.x_val, data.y_val

    n = len(x_train)
    bs = n if t.batch_size == "full" else min(t.batch_size, n)
    steps_per_epoch = math.ceil(n / bs)
    pending, step, last_flush = _Pending(), 0, time.monotonic()
    model.train()
    for epoch in range(1, t.epochs + 1):
        started = time.perf_counter()
        order = torch.randperm(n, generator=gen).to(device) if t.shuffle else None
        epoch_loss = torch.zeros((), device=device)
        for b in range(steps_per_epoch):
            if order is None:
                xb, yb = x_train[b * bs:(b + 1) * bs], y_train[b * bs:(b + 1) * bs]
            else:
                idx = order[b * bs:(b + 1) * bs]
                xb, yb = x_train[idx], y_train[idx]  # (batch, *features), (batch, ...)
            optimizer.zero_grad()
            loss = loss_fn(model(xb), yb)
            loss.backward()
            optimizer.step()
            step += 1
            epoch_loss += loss.detach() * len(xb)
            if step % t.log_every_steps == 0:
                pending.points.append({"kind": "step", "epoch": epoch, "step": step,
                                       "train_loss": loss.detach()})
            if time.monotonic() - last_flush >= hooks.flush_seconds:
                hooks.flush(pending.materialize(), epoch, step)
                last_flush = time.monotonic()
                if hooks.should_stop():
                    raise Stopped()
        point = {"kind": "epoch", "epoch": epoch, "step": step, "train_loss": epoch_loss / n,
                 "lr": optimizer.param_groups[0]["lr"]}
        if x_val is not None:
            point.update(_evaluate(model, loss_fn, x_val, y_val, spec.loss.type))
        seconds = time.perf_counter() - started
        point.update(epoch_seconds=seconds, samples_per_second=n / seconds if seconds > 0 else None)
        pending.points.append(point)
        if epoch == t.epochs or time.monotonic() - last_flush >= hooks.flush_seconds:
            hooks.flush(pending.materialize(), epoch, step)
            last_flush = time.monotonic()
            if hooks.should_stop():
                raise Stopped()
    return model.cpu()
