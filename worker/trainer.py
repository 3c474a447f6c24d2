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
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from app.ml import spec as S
from app.ml.build import build_loss, build_model, build_optimizer
from app.ml.regularization import EarlyStopper
from app.ml.schedules import Scheduler
from worker import precision, state
from worker.data_prep import Arrays, Split, job_preprocessing, prepare_data  # noqa: F401
from worker.points import Pending
from worker.steps import Diverged, check_finite, layer_norms, make_step

EVAL_CHUNK = 8192


class Stopped(Exception):
    """Raised when the job's stop hook asks the loop to end early."""


def _no_rewind(step: int) -> None:
    pass


@dataclass
class Hooks:
    # Called with metric points (plain floats) and the progress reached.
    flush: Callable[[list[dict], int, int], None] = lambda points, epoch, step: None
    should_stop: Callable[[], bool] = lambda: False
    # A rollback drops every point recorded after this step.
    rewind: Callable[[int], None] = _no_rewind
    flush_seconds: float = 1.0
    # Called with the serialized training state (worker/checkpoint.py) after every
    # checkpoint_every epochs and at least every checkpoint_seconds, points flushed first.
    checkpoint: Callable[[bytes, int], None] | None = None
    checkpoint_seconds: float = 300.0
    # Epoch checkpoints closer than this to the last one are skipped: many tiny epochs
    # must not spend their time writing checkpoints.
    checkpoint_min_gap: float = 0.0


def resolve_device(requested: str) -> torch.device:
    if requested == "cuda" or (requested == "auto" and torch.cuda.is_available()):
        if not torch.cuda.is_available():
            raise RuntimeError("the job asks for device cuda, but this worker has no GPU")
        return torch.device("cuda")
    return torch.device("cpu")


def _evaluate(model, loss_fn, x, y, loss_type, autocast=None) -> dict:
    model.eval()
    total = torch.zeros((), device=x.device)
    correct = torch.zeros((), device=x.device)
    with torch.no_grad():
        for i in range(0, len(x), EVAL_CHUNK):
            with precision.run_under(autocast):  # validation sees the model as training runs it
                out, yb = model(x[i:i + EVAL_CHUNK]), y[i:i + EVAL_CHUNK]
                chunk_loss = loss_fn(out, yb)
            total += chunk_loss * len(yb)
            if loss_type in ("cross_entropy", "nll"):
                correct += (out.argmax(dim=1) == yb).sum()
            elif loss_type == "bce_with_logits":
                correct += ((out > 0) == (yb > 0.5)).float().mean(dim=1).sum()
    model.train()
    point = {"val_loss": total / len(x)}
    if loss_type in ("cross_entropy", "nll", "bce_with_logits"):
        point["val_accuracy"] = correct / len(x)
    return point


@dataclass
class TrainResult:
    model: nn.Module  # on the CPU
    epochs_run: int
    stopped_early: bool = False
    best_epoch: int | None = None  # with early stopping: the epoch whose weights were kept


def _diagnostics(model: nn.Module, grads: dict) -> dict:
    params = layer_norms(model, of_grads=False)
    return {"grad_norm": grads.pop("total", None), "grad_norms": grads,
            "param_norm": params.pop("total", None), "param_norms": params}


def _monitored(point: dict, name: str) -> float:
    return float(point[name])  # one device sync, only when a schedule or early stopping needs it


class Trainer:
    """One job's training, one step at a time, with every piece of its state on ``self``."""

    def __init__(self, spec: S.JobSpec, x: np.ndarray, y: np.ndarray, device: torch.device,
                 hooks: Hooks | None = None, validation: Arrays | None = None):
        self.spec, self.hooks, self.device = spec, hooks or Hooks(), device
        t = spec.training
        torch.manual_seed(t.seed)
        self.gen = torch.Generator().manual_seed(t.seed)
        self.model = build_model(spec.model, x.shape[1:]).to(device)
        self.loss_fn = build_loss(spec.loss).to(device)
        self.optimizer = build_optimizer(spec.optimizer, self.model.parameters())
        self.data: Split = prepare_data(spec, x, y, self.gen, device, validation)
        self.n = len(self.data.x_train)
        self.bs = self.n if t.batch_size == "full" else min(t.batch_size, self.n)
        self.steps_per_epoch = math.ceil(self.n / self.bs)
        has_val = self.data.x_val is not None
        self.scheduler = Scheduler(spec.schedule, self.optimizer, t.epochs, self.steps_per_epoch, has_val)
        reg = spec.regularization
        self.stopper = EarlyStopper(reg.early_stopping, has_val) if reg.early_stopping else None
        # training.precision: autocast around the forward pass and the loss, and fp16's
        # gradient scaler, whose scale is training state (rollbacks and checkpoints keep it).
        self.autocast = precision.autocast(t.precision, device)
        self.scaler = precision.grad_scaler(t.precision, device)
        self.step_fn = make_step(self.model, self.loss_fn, self.optimizer, reg, self.autocast, self.scaler)
        # Where the loop is: the next epoch and batch to run, steps done.
        self.epoch, self.batch, self.step = 1, 0, 0
        self.order: torch.Tensor | None = None
        self.epoch_loss = torch.zeros((), device=device)
        self.epoch_seconds = 0.0
        self.pending, self.window, self.last_flush = Pending(), [], time.monotonic()
        self.last_checkpoint = time.monotonic()
        self.rollbacks, self._tries_this_epoch = 0, 0
        # The starts of the last two epochs: a rollback goes to the latest, and a second
        # failure in a row to the one before (the latest may already hold exploding weights).
        self._starts: list[dict] = []

    # ---- the loop --------------------------------------------------------------------

    def run(self) -> TrainResult:
        epochs, stop = self.spec.training.epochs, False
        self.model.train()
        while self.epoch <= epochs and not stop:
            try:
                stop = self._run_epoch()
            except Diverged as exc:
                self._roll_back(exc)
        if self.stopper is not None:
            self.stopper.restore(self.model)
        last = self.epoch - 1
        return TrainResult(self.model.cpu(), last, stopped_early=last < epochs,
                           best_epoch=self.stopper.best_epoch if self.stopper else None)

    def _run_epoch(self) -> bool:
        """Runs the rest of the current epoch; True when early stopping ends training."""
        if self.batch == 0:
            self._start_epoch()
        started = time.perf_counter()
        x, y, bs = self.data.x_train, self.data.y_train, self.bs
        every = self.spec.training.log_every_steps
        # Only a per-batch schedule (one_cycle) acts after a batch: no call per step otherwise.
        after_batch = self.scheduler.after_batch if self.scheduler.per_batch else None
        grads = None
        while self.batch < self.steps_per_epoch:
            b = self.batch
            if self.order is None:
                xb, yb = x[b * bs:(b + 1) * bs], y[b * bs:(b + 1) * bs]
            else:
                idx = self.order[b * bs:(b + 1) * bs]
                xb, yb = x[idx], y[idx]  # (batch, *features), (batch, ...)
            loss, grads = self.step_fn(xb, yb, b == self.steps_per_epoch - 1)
            if after_batch is not None:
                after_batch()
            self.batch, self.step = b + 1, self.step + 1
            self.window.append((self.epoch, self.step, loss))
            self.epoch_loss += loss * xb.shape[0]
            if self.step % every == 0:
                self.pending.add_step(self.epoch, self.step, loss)
            if time.monotonic() - self.last_flush >= self.hooks.flush_seconds:
                self.epoch_seconds += time.perf_counter() - started
                started = time.perf_counter()
                self._flush()
                # After the last batch the epoch's end comes first: it checkpoints when due.
                if self.batch < self.steps_per_epoch and \
                        time.monotonic() - self.last_checkpoint >= self.hooks.checkpoint_seconds:
                    self._checkpoint()
        self.epoch_seconds += time.perf_counter() - started
        return self._end_epoch(grads)

    def _start_epoch(self) -> None:
        if self.spec.training.on_divergence == "rollback" and not self._tries_this_epoch:
            self._starts = [*self._starts[-1:], state.capture(self)]  # before the permutation is drawn
        self.order = torch.randperm(self.n, generator=self.gen).to(self.device) \
            if self.spec.training.shuffle else None
        self.epoch_loss = torch.zeros((), device=self.device)
        self.epoch_seconds = 0.0

    def _end_epoch(self, grads: dict | None) -> bool:
        epochs = self.spec.training.epochs
        point = {"kind": "epoch", "epoch": self.epoch, "step": self.step,
                 "train_loss": self.epoch_loss / self.n, "lr": self.optimizer.param_groups[0]["lr"]}
        if self.data.x_val is not None:
            point.update(_evaluate(self.model, self.loss_fn, self.data.x_val, self.data.y_val,
                                   self.spec.loss.type, self.autocast))
        point.update(_diagnostics(self.model, grads or {}))
        seconds = self.epoch_seconds
        point.update(epoch_seconds=seconds, samples_per_second=self.n / seconds if seconds > 0 else None)
        if self.rollbacks:
            point["rollbacks"] = self.rollbacks
        self.pending.points.append(point)
        self._guard()  # schedules and early stopping must not act on a diverged loss
        s = self.scheduler
        s.after_epoch({s.monitor: float(point[s.monitor])} if s.plateau else {})
        stop = self.stopper is not None and self.stopper.update(
            self.epoch, {self.stopper.monitor: float(point[self.stopper.monitor])}, self.model)
        if self.stopper is not None and (stop or self.epoch == epochs):
            # The job's latest metrics then say which epoch's weights it keeps.
            point.update(stopped_early=bool(stop and self.epoch < epochs), best_epoch=self.stopper.best_epoch)
        last = stop or self.epoch == epochs
        every = self.spec.training.checkpoint_every
        since = time.monotonic() - self.last_checkpoint
        due = since >= self.hooks.checkpoint_seconds or \
            (bool(every) and self.epoch % every == 0 and since >= self.hooks.checkpoint_min_gap)
        self.epoch, self.batch, self._tries_this_epoch = self.epoch + 1, 0, 0
        if last or due or time.monotonic() - self.last_flush >= self.hooks.flush_seconds:
            self._flush()
        if due and not last:
            self._checkpoint()
        return stop

    def _checkpoint(self) -> None:
        """Hands the state to the checkpoint hook; every point up to now is already flushed."""
        if self.hooks.checkpoint is not None and not self.pending.points:
            from worker.checkpoint import to_bytes

            self.hooks.checkpoint(to_bytes(self), self.step)
        self.last_checkpoint = time.monotonic()

    # ---- metrics, divergence and rollback -------------------------------------------------

    def _guard(self) -> None:
        """Stops at a non-finite loss, keeping (and writing) every point before it."""
        try:
            check_finite(self.window)
        except Diverged as exc:
            self.pending.drop_from(exc.step)
            if self.spec.training.on_divergence == "fail" or self.rollbacks >= self.spec.training.max_rollbacks:
                self.hooks.flush(self.pending.materialize(), exc.epoch, exc.step - 1)
            raise
        self.window = []

    def _flush(self) -> None:
        self._guard()
        self.hooks.flush(self.pending.materialize(), self.epoch if self.batch else self.epoch - 1, self.step)
        self.last_flush = time.monotonic()
        if self.hooks.should_stop():
            raise Stopped()

    def _roll_back(self, exc: Diverged) -> None:
        """Back to the start of the diverged epoch with half the learning rate, or re-raise."""
        t = self.spec.training
        if t.on_divergence == "fail" or self.rollbacks >= t.max_rollbacks or not self._starts:
            if t.on_divergence == "rollback":
                raise Diverged(exc.epoch, exc.step, exc.value,
                               f" ({self.rollbacks} rollbacks with halved learning rates did not help)") from exc
            raise exc
        self.rollbacks += 1
        self._tries_this_epoch += 1
        if self._tries_this_epoch > 1 and len(self._starts) > 1:
            self._starts.pop()  # the later start failed again: go one epoch further back
        tries = self._tries_this_epoch
        state.restore(self, self._starts[-1])
        self._tries_this_epoch = tries
        self.scheduler.scale(0.5 ** tries)
        self.pending.points, self.window = [], []
        self.hooks.rewind(self.step)


def train(spec: S.JobSpec, x: np.ndarray, y: np.ndarray, device: torch.device,
          hooks: Hooks | None = None, validation: Arrays | None = None) -> TrainResult:
    """Trains the spec's model on (x, y)."""
    return Trainer(spec, x, y, device, hooks, validation).run()
